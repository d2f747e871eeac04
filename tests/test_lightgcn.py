import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnrec.data import RecDataset, interactions_to_csr
from gnnrec.graphs import bipartite_adjacency, normalized_bipartite, sym_normalize
from gnnrec.models import LightGCN, MF


def tiny():
    train = interactions_to_csr([0, 0, 1, 2, 2, 2], [0, 1, 1, 0, 2, 3], (4, 5))  # user 3, item 4 isolated
    return RecDataset("tiny", train, sp.csr_matrix((4, 5)), sp.csr_matrix((4, 5)))


def dense_reference(data, user_w, item_w, layers):
    r = data.train.toarray()
    n_u, n_i = r.shape
    a = np.zeros((n_u + n_i, n_u + n_i))
    a[:n_u, n_u:] = r
    a[n_u:, :n_u] = r.T
    deg = a.sum(1)
    d = np.power(deg, -0.5, where=deg > 0, out=np.zeros_like(deg))
    norm = d[:, None] * a * d[None, :]
    x = np.vstack([user_w, item_w])
    outs = [x]
    for _ in range(layers):
        outs.append(norm @ outs[-1])
    mean = np.mean(outs, axis=0)
    return mean[:n_u], mean[n_u:]


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_lightgcn_propagation_matches_dense_reference(layers):
    data = tiny()
    torch.manual_seed(0)
    model = LightGCN(data, embedding_dim=8, num_layers=layers)
    users, items = model()
    ref_u, ref_i = dense_reference(data, model.user_emb.weight.detach().double().numpy(),
                                   model.item_emb.weight.detach().double().numpy(), layers)
    np.testing.assert_allclose(users.detach().numpy(), ref_u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(items.detach().numpy(), ref_i, rtol=1e-5, atol=1e-6)


def test_lightgcn_matches_pyg_lgconv(small_synthetic):
    from torch_geometric.nn import LGConv

    torch.manual_seed(0)
    model = LightGCN(small_synthetic, embedding_dim=16, num_layers=2)
    users, items = model()
    hetero = small_synthetic.to_pyg()  # PyG interop: the training graph as HeteroData
    rates = hetero["user", "rates", "item"].edge_index
    assert rates.shape[1] == small_synthetic.train.nnz and hetero["item"].num_nodes == small_synthetic.n_items
    torch.testing.assert_close(hetero["item", "rated_by", "user"].edge_index, rates.flip(0))
    shift = torch.tensor([[0], [small_synthetic.n_users]])  # one node space: users, then items
    edge_index = torch.cat([rates + shift, (rates + shift).flip(0)], dim=1)
    conv = LGConv(normalize=True)
    x = torch.cat([model.user_emb.weight, model.item_emb.weight])
    layers = [x]
    for _ in range(2):
        layers.append(conv(layers[-1], edge_index))
    ref = torch.stack(layers).mean(0)
    torch.testing.assert_close(torch.cat([users, items]), ref, rtol=1e-4, atol=1e-5)


def test_normalisation_is_symmetric_and_isolated_nodes_are_zero():
    data = tiny()
    norm = sym_normalize(bipartite_adjacency(data.train))
    assert abs(norm - norm.T).max() < 1e-7
    assert norm[3].nnz == 0  # isolated user
    t = normalized_bipartite(data.train)
    assert t.layout == torch.sparse_csr and tuple(t.shape) == (9, 9)


def test_gradients_reach_embeddings_through_sparse_propagation(small_synthetic):
    # the sparse product has a hand-written backward: its gradients must equal dense autograd's, not just be non-zero
    # (layer 0 alone would give non-zero gradients even with a broken or detached propagation)
    torch.manual_seed(0)
    model = LightGCN(small_synthetic, embedding_dim=8, num_layers=2)
    users, pos, neg = torch.tensor([0, 1, 5]), torch.tensor([0, 1, 7]), torch.tensor([2, 3, 9])
    loss = model.bpr_loss(users, pos, neg, *model())
    loss.backward()
    n_u = small_synthetic.n_users
    adj = torch.from_numpy(sym_normalize(bipartite_adjacency(small_synthetic.train)).toarray()).float()
    x = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach().clone().requires_grad_(True)
    layers = [x]
    for _ in range(2):
        layers.append(adj @ layers[-1])
    out = torch.stack(layers).mean(0)
    ref = model.bpr_loss(users, pos, neg, out[:n_u], out[n_u:])
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.user_emb.weight.grad, x.grad[:n_u], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(model.item_emb.weight.grad, x.grad[n_u:], rtol=1e-4, atol=1e-7)
    # nodes outside the batch get gradient only through propagation: neighbours of user 0 that are not in the batch
    hop1 = [i for i in small_synthetic.train[0].indices if i not in (0, 1, 2, 3, 7, 9)]
    assert hop1 and model.item_emb.weight.grad[hop1].abs().sum(1).min() > 0


@pytest.mark.parametrize("norm", ["squared", "l2"])
def test_regulariser_forms(small_synthetic, norm):
    model = MF(small_synthetic, embedding_dim=4, reg_weight=0.5, reg_norm=norm)
    u, p, n = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])
    embs = [model.user_emb.weight[u], model.item_emb.weight[p], model.item_emb.weight[n]]
    expected = sum((e.pow(2).sum() if norm == "squared" else e.norm()) for e in embs) * 0.5 / 2
    torch.testing.assert_close(model.reg_loss(u, p, n), expected)


def test_sparse_product_backward_uses_the_transpose_of_a_non_symmetric_matrix():
    from gnnrec.graphs.spmm import FixedSparse

    gen = torch.Generator().manual_seed(0)
    dense = torch.rand(6, 6, generator=gen) * (torch.rand(6, 6, generator=gen) < 0.5)  # like a kNN item graph
    assert not torch.equal(dense, dense.T)
    x = torch.randn(6, 3, generator=gen, requires_grad=True)
    weight = torch.randn(6, 3, generator=gen)
    (FixedSparse(dense.to_sparse_csr(), dense.T.contiguous().to_sparse_csr()) @ x * weight).sum().backward()
    got = x.grad.clone()
    x.grad = None
    (dense @ x * weight).sum().backward()
    torch.testing.assert_close(got, x.grad)
