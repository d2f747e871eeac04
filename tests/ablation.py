"""Shared harness for the tests that a multimodal model's defining part matters.

The data are built so that content carries what interactions barely show: few interactions per user and
item, features that are clean views of the item clusters. A model and the same model with one part removed
(a subclass in the test) are trained with the same seed and settings; the full model must win clearly.
"""
from __future__ import annotations

from gnnrec.config import load_config
from gnnrec.models import MODELS
from gnnrec.train import train

SPARSE_CONTENT = ["data.synthetic.n_users=600", "data.synthetic.n_items=400", "data.synthetic.n_clusters=8",
                  "data.synthetic.mean_interactions=5", "data.synthetic.min_interactions=3",
                  "data.synthetic.feature_noise=0.2", "data.synthetic.seed=2",
                  "data.synthetic.modalities={image: 32, audio: 24}", "data.drop_cold=false",
                  "train.batch_size=256", "train.progress_bar=false", "train.accelerator=cpu",
                  "eval.ks=[20]", "train.patience=5", "optim.lr=0.01"]


def full_vs_ablated(tmp_path, monkeypatch, name: str, ablated: type, overrides=(), epochs: int = 30,
                    metric: str = "recall@20") -> tuple[float, float]:
    """Test ``metric`` of model ``name`` and of ``ablated`` (registered for the test only), same seed and data."""
    monkeypatch.setitem(MODELS, f"{name}_ablated", ablated)
    scores = []
    for model in (name, f"{name}_ablated"):
        cfg = load_config(None, [*SPARSE_CONTENT, f"output.dir={tmp_path / model}", f"model.name={model}",
                                 f"train.max_epochs={epochs}", *overrides])
        scores.append(train(cfg).metrics["test"][metric])
    return scores[0], scores[1]
