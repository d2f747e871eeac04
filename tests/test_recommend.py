"""Recommendations from a trained run: original ids, hidden known items, K edge cases, many users, files."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnrec.cli import main
from gnnrec.errors import GnnrecError
from gnnrec.recommend import top_k
from gnnrec.runs import Run
from tests.conftest import shared_dataset
from tests.test_training import SMALL


def test_top_k_hides_known_items_and_never_pads_with_them():
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    known = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 1, 1]]))
    top = top_k(lambda users: scores[users], np.array([0, 1]), 3, known)
    np.testing.assert_array_equal(top.items, [[1, 3, -1], [0, -1, -1]])
    np.testing.assert_array_equal(top.scores[0, :2], [4.0, 2.0])
    assert np.isneginf(top.scores[0, 2])
    for bad in (0, -3, 1.5):
        with pytest.raises(GnnrecError, match="k must be a whole number >= 1"):
            top_k(lambda users: scores[users], np.array([0]), bad, known)


@pytest.fixture(scope="module")
def ml100k_run(tmp_path_factory):
    data = shared_dataset("ml-100k")
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", f"data.source={data}", "model.name=mf", "train.max_epochs=2", f"output.dir={out}",
                 "output.name=r", "train.progress_bar=false", "eval.ks=[20]"]) == 0
    return Run.open(out / "r")


def test_recommend_speaks_the_dataset_s_original_ids(ml100k_run):
    run = ml100k_run
    user_ids = run.dataset.user_info["user_id"]
    item_ids = run.dataset.item_info["item_id"]
    assert [str(u) for u in user_ids[:3]] != ["0", "1", "2"]  # RecBole tokens are not the internal order
    u = 5
    recs = run.recommend([str(user_ids[u])], k=10)
    scores = run.scores([str(user_ids[u])])[0]
    known = (run.dataset.train + run.dataset.valid + run.dataset.test)[u].indices
    scores[known] = -np.inf
    expected = [str(item_ids[i]) for i in np.argsort(-scores, kind="stable")[:10]]
    assert recs[0]["user"] == str(user_ids[u]) and recs[0]["items"] == expected
    assert not set(recs[0]["items"]) & {str(item_ids[i]) for i in known}


def test_recommend_many_users_k_above_unseen_and_unknown_ids(ml100k_run, tmp_path, capsys):
    run = ml100k_run
    recs = run.recommend(None, k=5)
    assert len(recs) == run.dataset.n_users and all(len(r["items"]) == 5 for r in recs)
    big = run.recommend([recs[0]["user"]], k=run.dataset.n_items + 10)[0]
    n_known = (run.dataset.train + run.dataset.valid + run.dataset.test)[0].nnz
    assert len(big["items"]) == run.dataset.n_items - n_known and np.isfinite(big["scores"]).all()
    with pytest.raises(GnnrecError, match="unknown user id\\(s\\) no-such-user"):
        run.recommend(["no-such-user"])
    out = tmp_path / "recs.tsv"
    assert main(["recommend", str(run.folder), "--all", "--k", "3", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "user\trank\titem\tscore" and len(lines) == 1 + 3 * run.dataset.n_users
    capsys.readouterr()
    assert main(["recommend", str(run.folder), "--user", "no-such-user"]) == 2
    assert "unknown user id(s) no-such-user" in capsys.readouterr().err
    assert main(["recommend", str(run.folder), "--user", recs[0]["user"], "--k", "0"]) == 2
    assert "k must be a whole number >= 1" in capsys.readouterr().err
