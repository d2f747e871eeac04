import pytest
import torch

from gnnrec.models import MF, LightGCN
from gnnrec.models import base


def _three_steps(model, opt_factory):
    torch.manual_seed(0)
    users = torch.arange(0, 64)
    pos = torch.arange(0, 64) % model.n_items
    neg = (torch.arange(0, 64) * 7 + 3) % model.n_items
    opt = opt_factory(model.parameters())
    for _ in range(3):
        opt.zero_grad()
        loss, _ = model.loss(users, pos, neg)
        loss.backward()
        opt.step()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("cls", [MF, LightGCN])
def test_fused_adam_steps_equal_plain_adam(small_synthetic, cls):
    torch.manual_seed(1)
    model = cls(small_synthetic, embedding_dim=16)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    plain = _three_steps(model, lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-4))
    model.load_state_dict(state)
    fused = _three_steps(model, lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-4, fused=True))
    for name in plain:
        assert not torch.equal(plain[name], state[name])  # the steps moved the parameters
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-5, atol=1e-6)


def test_recommender_uses_fused_adam_where_supported(small_synthetic):
    model = MF(small_synthetic, embedding_dim=8, lr=2e-3, weight_decay=1e-5)
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["fused"] is True  # torch >= 2.4 has the fused kernel on CPU
    assert opt.defaults["lr"] == 2e-3 and opt.defaults["weight_decay"] == 1e-5
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}


def test_plain_adam_where_fused_is_unsupported(small_synthetic, monkeypatch):
    real = torch.optim.Adam

    def no_fused(params, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", no_fused)
    opt = MF(small_synthetic, embedding_dim=8).configure_optimizers()
    assert isinstance(opt, real) and not opt.defaults["fused"]
    assert sum(len(g["params"]) for g in opt.param_groups) == 2
