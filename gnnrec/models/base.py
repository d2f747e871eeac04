"""The LightningModule every embedding recommender shares: BPR training and full-ranking evaluation."""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.errors import ConfigError
from gnnrec.models.rows import bpr_differences, row_squares, rows
from gnnrec.models.sparse_adam import RowSparseAdam

REG_NORMS = ("squared", "l2")


def adam(params, **kwargs) -> torch.optim.Adam:
    """``torch.optim.Adam`` with the fused kernel (one multi-tensor kernel per step: same maths, results equal
    to float tolerance) where the parameters' device and dtype support it, else the plain one.

    Lightning calls ``configure_optimizers`` after moving the model, so the device check sees the real one;
    torch raises ``RuntimeError`` (unsupported device/dtype) or ``TypeError`` (no ``fused`` argument) at
    construction, which is the check used here.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, **kwargs)


class Recommender(L.LightningModule):
    """Subclasses implement ``forward() -> (user_embeddings, item_embeddings)`` over all users and items and
    usually ``init_id_embeddings`` (whose ``layer0`` the regulariser penalises); scores are dot products.

    Evaluation metric sums come from the ``FullRankingEvaluator`` that the DataModule holds; under DDP they
    are summed over ranks before logging, so every rank logs the same global value.
    """

    trainable = True  # False for learning-free models (GTE): `gnnrec train` then only evaluates

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, reg_weight: float = 1e-4,
                 reg_norm: str = "squared", lr: float = 1e-3, weight_decay: float = 0.0):
        super().__init__()
        if reg_norm not in REG_NORMS:
            raise ConfigError(f"model.reg_norm must be one of {REG_NORMS}, got '{reg_norm}'")
        self.save_hyperparameters(ignore=["dataset"])
        self.n_users, self.n_items = dataset.n_users, dataset.n_items
        self._sums: torch.Tensor | None = None
        self._scorer = None

    def init_id_embeddings(self, dim: int) -> None:
        """Free user and item ID embeddings (``user_emb``, ``item_emb``), Xavier-initialised as in MMRec."""
        self.user_emb = nn.Embedding(self.n_users, dim)
        self.item_emb = nn.Embedding(self.n_items, dim)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)

    def layer0(self, users, pos, neg) -> list[torch.Tensor]:
        """The batch's free embeddings, which the regulariser penalises."""
        return [*rows(self.user_emb.weight, users), *rows(self.item_emb.weight, pos, neg)]

    def layer0_squares(self, users, pos, neg) -> torch.Tensor:
        """The squared norms of ``layer0``'s tensors, one autograd node per table (``row_squares``)."""
        return torch.cat([row_squares(self.user_emb.weight, users), row_squares(self.item_emb.weight, pos, neg)])

    def bpr_terms(self, users, pos, neg, user_emb, item_emb) -> torch.Tensor:
        """Per-triple BPR losses ``-log sigmoid(s(u, pos) - s(u, neg))``."""
        return -F.logsigmoid(bpr_differences(user_emb, item_emb, users, pos, neg))

    def bpr_loss(self, users, pos, neg, user_emb, item_emb) -> torch.Tensor:
        return self.bpr_terms(users, pos, neg, user_emb, item_emb).mean()

    def reg_loss(self, users, pos, neg) -> torch.Tensor:
        if self.hparams.reg_norm == "squared":
            total = self.layer0_squares(users, pos, neg).sum()
        else:  # MMRec's EmbLoss: unsquared Frobenius norms
            total = sum(e.norm(p=2) for e in self.layer0(users, pos, neg))
        return self.hparams.reg_weight * total / len(users)

    def loss(self, users, pos, neg) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss of a batch of BPR triples, and its named parts for logging."""
        user_emb, item_emb = self()
        bpr = self.bpr_loss(users, pos, neg, user_emb, item_emb)
        return bpr + self.reg_loss(users, pos, neg), {"bpr": bpr}

    def training_step(self, batch, batch_idx):
        users, pos, neg = batch[0], batch[1], batch[2]
        # which triples are LLM-augmented (a fourth row, when the DataModule appends some); None otherwise
        self.augmented_in_batch = batch[3].bool() if len(batch) > 3 else None
        loss, parts = self.loss(users, pos, neg)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(users),
                 sync_dist=True)
        self.log("epoch", float(self.logged_epoch()), on_step=False, on_epoch=True, batch_size=len(users))
        for name, value in parts.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=len(users), sync_dist=True)
        return loss

    def logged_epoch(self) -> int:
        """The 1-based epoch a metrics.csv row belongs to, as the console's "best epoch N" counts: the epoch in
        training, the best checkpoint's epoch for the final evaluation (``evaluated_epoch``)."""
        return getattr(self, "evaluated_epoch", None) or self.current_epoch + 1

    def on_save_checkpoint(self, checkpoint):
        if getattr(self, "gnnrec_config", None) is not None:  # lets `gnnrec evaluate` rebuild data and model
            checkpoint["gnnrec_config"] = self.gnnrec_config
        if getattr(self, "data_fingerprint", None) is not None:  # set by training: RecDataset.fingerprint()
            checkpoint["gnnrec_data"] = self.data_fingerprint

    def configure_optimizers(self):
        # tables looked up with nn.Embedding(sparse=True) (trainable feature tables) get row-sparse updates
        row_sparse = [m.weight for m in self.modules()
                      if isinstance(m, nn.Embedding) and m.sparse and m.weight.requires_grad]
        if row_sparse:
            return RowSparseAdam(self.parameters(), row_sparse, lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)
        return adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def decaying(self, optimizer, decay: float, every: int) -> dict:
        """``optimizer`` with MMRec's learning-rate schedule lr x decay^(epoch / every), stepped per epoch."""
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: decay ** (epoch / every))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    @torch.no_grad()
    def score_fn(self):
        """A function users -> (B, n_items) scores, with the full-graph embeddings computed once."""
        user_emb, item_emb = self()
        return lambda users: user_emb[users.to(user_emb.device)] @ item_emb.T

    @torch.no_grad()
    def eval_scorer(self):
        """``score_fn`` for evaluation loops, which use up each batch's scores before the next: dot-product
        models write them into one reused buffer (``ReusedBufferScorer``); models that score otherwise (their
        own ``score_fn``: GTE ...) keep theirs."""
        if type(self).score_fn is not Recommender.score_fn:
            return self.score_fn()
        return ReusedBufferScorer(*self())

    # --- full-ranking evaluation -------------------------------------------------------------------
    # ``collect_per_user``: set for a final evaluation (train's best checkpoint); each step then also keeps its
    # per-user rows, the end adds the beyond-accuracy metrics to the logged ones and leaves the rows (all ranks
    # merged, user order) in ``per_user_rows[split]``. Per-epoch validation leaves it off and stays as cheap.
    collect_per_user = False

    def evaluator(self, split: str):
        return self.trainer.datamodule.evaluators[split]

    def start_eval(self):
        self._scorer = self.eval_scorer()
        self._sums = None
        self._eval_rows = []

    def eval_step(self, split: str, users: torch.Tensor):
        sums, rows = self.evaluator(split).batch_eval(users, self._scorer(users), self.collect_per_user)
        self._sums = sums if self._sums is None else self._sums + sums
        if rows is not None:
            self._eval_rows.append(rows)

    def end_eval(self, split: str):
        ev = self.evaluator(split)
        local = self._sums if self._sums is not None else torch.zeros(len(ev.names) + 1, dtype=torch.float64)
        total = self.trainer.strategy.reduce(local.to(self.device), reduce_op="sum").cpu()
        values = ev.finalize(total)
        if self.collect_per_user:
            collected = ev.collect(self._eval_rows)
            if self.trainer.world_size > 1:  # every rank's rows (lengths differ by rank), merged in user order
                gathered = [None] * self.trainer.world_size
                torch.distributed.all_gather_object(gathered, collected)
                collected = ev.collect(gathered)
            values.update(ev.beyond_values(collected))
            self.per_user_rows = {**getattr(self, "per_user_rows", {}), split: collected}
        self._eval_rows = []
        self.log_dict({f"{split}/{k}": float(v) for k, v in values.items()}, sync_dist=False,  # "users": evaluated
                      rank_zero_only=False)
        self.log("epoch", float(self.logged_epoch()), sync_dist=False, rank_zero_only=False)
        self._scorer, self._sums = None, None

    def on_validation_epoch_start(self):
        self.start_eval()

    def validation_step(self, users, batch_idx):
        self.eval_step("valid", users)

    def on_validation_epoch_end(self):
        self.end_eval("valid")

    def on_test_epoch_start(self):
        self.start_eval()

    def test_step(self, users, batch_idx):
        self.eval_step("test", users)

    def on_test_epoch_end(self):
        self.end_eval("test")


class ReusedBufferScorer:
    """users -> ``user_emb[users] @ item_emb.T``, written into one (B, n_items) buffer that every batch reuses:
    a fresh buffer per batch costs page faults (0-18% of evaluation time on CPU, see docs/evaluation.md). The same
    product as ``Recommender.score_fn``, so identical scores; each call's result is valid until the next call.
    Under autocast or with mixed dtypes it returns a fresh product, as ``score_fn`` would."""

    def __init__(self, user_emb: torch.Tensor, item_emb: torch.Tensor):
        self.user_emb, self.item_emb_t = user_emb, item_emb.T
        self.buffer: torch.Tensor | None = None

    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        u = self.user_emb[users.to(self.user_emb.device)]
        if (u.dtype != self.item_emb_t.dtype or torch.is_autocast_enabled(u.device.type)
                or (torch.is_grad_enabled() and (u.requires_grad or self.item_emb_t.requires_grad))):
            return u @ self.item_emb_t
        b, n = u.shape[0], self.item_emb_t.shape[1]
        if self.buffer is None or self.buffer.shape[0] < b:
            self.buffer = torch.empty((b, n), dtype=u.dtype, device=u.device)
        return torch.mm(u, self.item_emb_t, out=self.buffer[:b])
