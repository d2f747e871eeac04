"""The metrics a run reports for its best checkpoint are the ones its reopened checkpoint gives.

Models that cache state derived from their weights (LATTICE's learned item graph, DiffMM's denoised graphs)
must rebuild it when the best checkpoint is loaded: otherwise the final evaluation mixes the best epoch's
weights with a graph built from another epoch's."""
import pytest
import torch

from gnnrec.config import load_config
from gnnrec.eval import FullRankingEvaluator
from gnnrec.runs import load_run
from gnnrec.train import train

SMALL = ["data.synthetic.n_users=300", "data.synthetic.n_items=200", "data.synthetic.n_clusters=4",
         "data.synthetic.mean_interactions=15", "train.max_epochs=6", "train.batch_size=256", "train.patience=2",
         "train.progress_bar=false", "optim.lr=0.05"]


@pytest.mark.parametrize("model", ["lattice", "diffmm"])
def test_reported_test_metrics_equal_the_reopened_checkpoints(tmp_path, model):
    torch.set_num_threads(1)
    cfg = load_config(None, [f"model.name={model}", f"output.dir={tmp_path}", "output.name=run", *SMALL])
    result = train(cfg)
    assert result.metrics["best_epoch"] < result.metrics["epochs_trained"]  # the last epoch is not the best one
    _, data, reopened = load_run(result.run_dir)
    again = FullRankingEvaluator(data, "test", "strict", cfg["eval"]["ks"]).evaluate(reopened.score_fn())
    for key in ("recall@20", "ndcg@20", "recall@50"):
        assert again[key] == pytest.approx(result.metrics["test"][key], rel=1e-5, abs=1e-6), key
