"""One-node row lookups: the same values and gradients as plain indexing, with one gradient table."""
import torch

from gnnrec.models.rows import rows


def test_rows_equal_plain_indexing_in_value_and_gradient():
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(30, 5, generator=gen)
    a, b = torch.randint(30, (50,), generator=gen), torch.randint(30, (7, 3), generator=gen)  # repeats, 2-d index
    wa, wb = torch.randn(50, 5, generator=gen), torch.randn(7, 3, 5, generator=gen)
    ref_t, t = table.clone().requires_grad_(True), table.clone().requires_grad_(True)
    ((ref_t[a] * wa).sum() + (ref_t[b] * wb).sum()).backward()
    ra, rb = rows(t, a, b)
    ((ra * wa).sum() + (rb * wb).sum()).backward()
    torch.testing.assert_close(ra, table[a])
    torch.testing.assert_close(rb, table[b])
    torch.testing.assert_close(t.grad, ref_t.grad)


def test_rows_with_an_unused_output():
    table = torch.randn(10, 3, requires_grad=True)
    first, _ = rows(table, torch.tensor([1, 1, 4]), torch.tensor([2]))
    first.sum().backward()
    expected = torch.zeros(10, 3)
    expected[1], expected[4] = 2.0, 1.0
    torch.testing.assert_close(table.grad, expected)
