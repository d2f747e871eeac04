from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from gnnrec.config import load_config
from gnnrec.data import make_synthetic
from gnnrec.errors import ConfigError
from gnnrec.graphs.knn import knn_topk
from gnnrec.models import DAMRS, build_model
from gnnrec.models.damrs import (_GradedContrast, behaviour_graph, binary_sym_norm, consistent_knn,
                                 denoised_item_graphs, symmetric_bernoulli_kl)
from tests.ablation import full_vs_ablated


def dense_consistent_knn(features, k):
    """Reference: dense cosine matrices, mask below each modality's mean, top-k of the survivors per row."""
    sims = {}
    for m, x in features.items():
        x = torch.as_tensor(x, dtype=torch.float64)
        x = x / x.norm(dim=1, keepdim=True)
        sims[m] = x @ x.T
    keep = torch.stack([s >= s.mean() for s in sims.values()]).all(0)
    out = {}
    for m, s in sims.items():
        s = s.masked_fill(~keep, -np.inf)
        out[m] = {(i, int(j)) for i in range(len(s)) for j in torch.argsort(-s[i], stable=True)[:k]
                  if s[i, j] > -np.inf}
    return out


def test_consistent_knn_matches_a_dense_reference_and_drops_inconsistent_edges():
    rng = np.random.default_rng(0)
    feats = {"image": rng.normal(size=(60, 5)).astype(np.float32), "audio": rng.normal(size=(60, 4)).astype(np.float32)}
    edges = consistent_knn(feats, k=6, row_block=16, col_block=25)  # blocks that do not divide 60
    ref = dense_consistent_knn(feats, 6)
    for m in feats:
        assert set(zip(edges[m][0].tolist(), edges[m][1].tolist())) == ref[m]
    # denoising removes edges a plain per-modality kNN graph has
    plain, _ = knn_topk(feats["image"], 6)
    plain_edges = {(i, int(j)) for i in range(60) for j in plain[i]}
    assert len(plain_edges - ref["image"]) > 0
    many = consistent_knn(feats, k=30)  # rows with fewer than k consistent neighbours keep only those
    assert set(zip(many["audio"][0].tolist(), many["audio"][1].tolist())) == dense_consistent_knn(feats, 30)["audio"]
    assert len(many["audio"][0]) < 60 * 30


def test_item_graphs_are_sparse_normalised_and_cached(tmp_path):
    data = make_synthetic(n_users=120, n_items=90, modalities={"image": 8, "text": 6}, seed=4)
    graphs = denoised_item_graphs(data.features, 5, cache_dir=str(tmp_path))
    cached = denoised_item_graphs(data.features, 5, cache_dir=str(tmp_path))
    assert list(tmp_path.iterdir())
    for m, g in graphs.items():
        assert isinstance(g, sp.csr_matrix) and g.nnz <= 90 * 5
        assert (g != cached[m]).nnz == 0
        deg = np.asarray((g > 0).sum(1)).ravel()
        rows, cols = g.nonzero()
        np.testing.assert_allclose(g[rows, cols].A1, 1 / np.sqrt(deg[rows] * deg[cols]), rtol=1e-5)


def test_behaviour_graph_uses_co_interactions_of_the_training_split_only():
    # items 0,1 share users 0,1,2; items 0,2 share user 0 only; item 3 shares users 1,2 with items 0 and 1
    train = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 1, 0, 1], [1, 1, 0, 1]], dtype=np.float32))
    adj = (behaviour_graph(train, k=1, min_common=2) > 0).toarray()
    expected = np.eye(4, dtype=bool)
    expected[0, 1] = expected[1, 0] = True  # item 1: top-1 among {0: 3 users, 3: 2 users} is 0
    expected[3, 0] = True  # a tie (2 users with items 0 and 1) goes to the lower id
    np.testing.assert_array_equal(adj, expected)
    assert (behaviour_graph(train, k=2, min_common=2) > 0)[1, 3]
    # the model's behaviour view ignores valid/test interactions
    data = make_synthetic(n_users=150, n_items=100, seed=2)
    model = DAMRS(data, embedding_dim=8)
    view = model.views[model.view_names.index("behaviour")].matrix.to_dense().numpy()
    np.testing.assert_allclose(view, behaviour_graph(data.train, 2).toarray())
    assert model.view_names == ["image", "text", "behaviour"]


def test_binary_sym_norm_matches_dense():
    rows, cols = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 0, 2])
    a = np.zeros((3, 3))
    a[rows, cols] = 1
    d = a.sum(1) ** -0.5
    np.testing.assert_allclose(binary_sym_norm(rows, cols, 3).toarray(), d[:, None] * a * d[None], rtol=1e-5)


def test_symmetric_kl_equals_the_explicit_form():
    a, b = torch.randn(50), torch.randn(50)
    p, q = torch.sigmoid(a), torch.sigmoid(b)
    kl = lambda x, y: x * torch.log(x / y) + (1 - x) * torch.log((1 - x) / (1 - y))  # noqa: E731
    torch.testing.assert_close(symmetric_bernoulli_kl(a, b), kl(p, q) + kl(q, p))


def test_forward_adds_the_mean_view_and_loss_trains_every_part(small_synthetic):
    model = DAMRS(small_synthetic, embedding_dim=8)
    users_bb, items_bb, views = model.encode()
    users, items = model()
    assert users.shape == (small_synthetic.n_users, 8) and items.shape == (small_synthetic.n_items, 8)
    torch.testing.assert_close(items, items_bb + torch.stack(views).mean(0))
    b_users, pos, neg = torch.tensor([0, 1, 2, 1]), torch.tensor([3, 4, 3, 5]), torch.tensor([6, 7, 8, 6])
    loss, parts = model.loss(b_users, pos, neg)
    assert set(parts) == {"bpr", "align_user", "align_item"} and loss.isfinite()
    loss.backward()
    assert model.user_emb.weight.grad.abs().sum() > 0 and model.item_emb.weight.grad.abs().sum() > 0
    mf = DAMRS(small_synthetic, embedding_dim=8, backbone="mf", kl_weight=0, neighbor_weight=0)
    u, i = mf()
    torch.testing.assert_close(u, mf.user_emb.weight)
    assert set(mf.loss(b_users, pos, neg)[1]) == {"bpr"}


def test_feedback_weights_downweight_positives_the_views_disagree_on(small_synthetic):
    model = DAMRS(small_synthetic, embedding_dim=4)
    u = torch.tensor([[4.0, 0, 0, 0]] * 3)
    agree = torch.tensor([[1.0, 0, 0, 0]] * 3)  # every view: the user likes it
    split = torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [1.0, 0, 0, 0]])  # the views disagree
    dislike = -agree  # every view: the user does not like it
    neutral = torch.tensor([[0, 1.0, 0, 0]] * 3)  # negatives: indifferent (p = 0.5)
    views = [torch.stack([agree[v], split[v], dislike[v], neutral[v]]) for v in range(3)]
    w_pos, w_neg = model.feedback_weights(u, views, torch.tensor([0, 1, 2]), torch.tensor([3, 3, 3]))
    assert w_pos[0] > w_pos[1] > 0 and w_pos[0] > w_pos[2]
    torch.testing.assert_close(w_pos[0], torch.sigmoid(torch.tensor(4.0)))
    assert w_neg[0] == 0 and w_neg[2] == 0  # item 2: every view below the negatives -> max - mean < 0
    assert w_neg[1] == 0  # mean above the negatives' mean
    # a positive no better than the negatives on average but liked by one view gets the reversed term
    views[0][1] = torch.tensor([0.3, 1.0, 0, 0])  # p = sigmoid(4 x 0.29) = 0.76
    views[1][1] = views[2][1] = torch.tensor([-1.0, 0, 0, 0])  # p = 0.02
    w_pos, w_neg = model.feedback_weights(u, views, torch.tensor([0, 1, 2]), torch.tensor([3, 3, 3]))
    assert 0 < w_neg[1] <= 1 and w_pos[1] < w_pos[0]


def test_plain_bpr_switch_drops_the_feedback_weights(small_synthetic):
    plain = DAMRS(small_synthetic, embedding_dim=8, kl_weight=0, neighbor_weight=0, denoise_feedback=False)
    denoised = DAMRS(small_synthetic, embedding_dim=8, kl_weight=0, neighbor_weight=0)
    denoised.load_state_dict(plain.state_dict())
    users, pos, neg = torch.tensor([0, 1, 2, 1]), torch.tensor([3, 4, 3, 5]), torch.tensor([6, 7, 8, 6])
    user_emb, item_emb = plain()
    expected = plain.bpr_loss(users, pos, neg, user_emb, item_emb)  # -mean log sigmoid(s+ - s-), weights 1 and 0
    torch.testing.assert_close(plain.loss(users, pos, neg)[1]["bpr"], expected)
    assert not torch.isclose(denoised.loss(users, pos, neg)[1]["bpr"], expected)  # the default weighs the triples


def test_tiktok_config_follows_the_authors_tiktok_settings():
    """src_tiktok: train_batch_size 4096 (overall.yaml and the DA-MRS log), knn_k 5, L_AI with knn_k positives."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "damrs_tiktok.yaml")
    model = cfg["model"]
    assert cfg["train"]["batch_size"] == 4096
    assert model["num_positives"] == model["knn_k"] == 5
    assert (model["num_layers"], model["num_mm_layers"], cfg["optim"]["lr"]) == (3, 1, 1e-3)


def test_item_alignment_is_graded_contrastive_with_a_dense_reference(small_synthetic):
    model = DAMRS(small_synthetic, embedding_dim=8, num_positives=3)
    _, _, views = model.encode()
    items = torch.tensor([0, 5, 9])
    got = model.item_alignment(views, items)
    zs = [F.normalize(h, dim=-1) for h in views]
    probs = [torch.softmax(z[items] @ z.T, 1) for z in zs]
    ref = 0
    for z, p in zip(zs, probs):
        first = torch.topk(sum(probs) + p, 3).indices
        rest = p.clone()
        rest.scatter_(1, first, 0)
        second = torch.topk(rest, 3).indices
        e = torch.exp(z[items] @ z.T / 0.2)
        s1, s2 = e.gather(1, first).sum(1), e.gather(1, second).sum(1)
        ref = ref - torch.log(s1 / e.sum(1) + 1e-9) - torch.log(s2 / (e.sum(1) - s1) + 1e-9)
    ref = (ref / len(zs)).mean()
    torch.testing.assert_close(got, ref)
    # and the same gradient to the item embeddings (the positives are chosen without gradient, the loss is not)
    weight = model.item_emb.weight
    (got_grad,), (ref_grad,) = (torch.autograd.grad(v, weight, retain_graph=True) for v in (got, ref))
    assert ref_grad.abs().sum() > 0
    torch.testing.assert_close(got_grad, ref_grad)


def test_graded_contrast_node_equals_autograd_of_its_formula():
    """L_AI's one-node form (_GradedContrast) against autograd through exp, row sums and gathers: the same
    values and cosine gradients, and torch's numerical gradient check (float64)."""
    torch.manual_seed(0)
    rows, items, k, t = 7, 30, 3, 0.2
    cosine = (torch.rand(rows, items, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    grades = torch.stack([torch.randperm(items) for _ in range(rows)])[:, : 2 * k]
    weights = torch.rand(rows, dtype=torch.float64)

    def formula(c):
        sim = torch.exp(c / t)
        total, graded = sim.sum(1), sim.gather(1, grades)
        s1, s2 = graded[:, :k].sum(1), graded[:, k:].sum(1)
        return -torch.log(s1 / total + 1e-9) - torch.log(s2 / (total - s1) + 1e-9)

    expected = formula(cosine)
    got = _GradedContrast.apply(cosine, grades, t)
    torch.testing.assert_close(got, expected)
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), cosine)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), cosine)
    torch.testing.assert_close(grad_got, grad_expected)
    assert torch.autograd.gradcheck(lambda c: _GradedContrast.apply(c, grades, t), (cosine,))


def test_damrs_needs_features_and_checks_its_settings(small_synthetic):
    bare = make_synthetic(n_users=100, n_items=80, modalities={}, seed=0)
    with pytest.raises(ConfigError, match="model 'damrs' needs item features"):
        build_model(bare, "damrs")
    for key, value in [("backbone", "vbpr"), ("knn_k", 0), ("knn_k", 1000), ("num_layers", -1),
                       ("num_mm_layers", 0), ("behaviour_k", 0), ("kl_weight", -1.0), ("neighbor_weight", -0.1),
                       ("temperature", 0.0), ("num_positives", 150)]:
        with pytest.raises(ConfigError, match=f"model.{key}"):
            build_model(small_synthetic, "damrs", **{key: value})


def test_any_number_of_modalities():
    data = make_synthetic(n_users=150, n_items=100, modalities={"audio": 8, "image": 12, "caption": 16}, seed=3)
    model = build_model(data, "damrs", embedding_dim=8)
    assert model.view_names == ["audio", "caption", "image", "behaviour"]
    users = torch.arange(4)
    assert model.loss(users, users, users + 1)[0].isfinite()


class WithoutItemViews(DAMRS):
    """The backbone alone (LightGCN, plain BPR): the denoised item-item graphs and everything built on them gone."""

    def forward(self):
        users, items, _ = self.encode()
        return users, items

    def loss(self, users, pos, neg):
        user_emb, item_emb = self()
        bpr = self.bpr_loss(users, pos, neg, user_emb, item_emb)
        return bpr, {"bpr": bpr}


class WithoutDenoisingAndAlignment(DAMRS):
    """Plain per-modality kNN graphs, plain BPR and no alignment losses: FREEDOM-like views without DA-MRS."""

    def build_modality_graphs(self, features, k, cache_dir):
        out = {}
        for m in sorted(features):
            idx, _ = knn_topk(features[m], k)
            out[m] = binary_sym_norm(np.repeat(np.arange(len(idx)), k), idx.numpy().ravel(), len(idx))
        return out

    def feedback_weights(self, u, views, pos, neg):
        return torch.ones(len(pos)), torch.zeros(len(pos))

    def loss(self, users, pos, neg):
        self.hparams.kl_weight = self.hparams.neighbor_weight = 0.0
        return super().loss(users, pos, neg)


def test_ablation_denoised_item_graphs_matter(tmp_path, monkeypatch):
    full, ablated = full_vs_ablated(tmp_path, monkeypatch, "damrs", WithoutItemViews, ["model.embedding_dim=32"])
    print(f"damrs full {full:.4f} vs without item views {ablated:.4f}")
    assert full > ablated + 0.02, (full, ablated)


def test_ablation_denoising_and_alignment_matter(tmp_path, monkeypatch):
    full, ablated = full_vs_ablated(tmp_path, monkeypatch, "damrs", WithoutDenoisingAndAlignment,
                                    ["model.embedding_dim=32"])
    print(f"damrs full {full:.4f} vs without denoising and alignment {ablated:.4f}")
    assert full > ablated + 0.008, (full, ablated)
