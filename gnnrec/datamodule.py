"""Lightning DataModule: fresh BPR triples every epoch, and user batches for full-ranking evaluation.

Distributed runs do not use Lightning's DistributedSampler: every rank draws the same epoch (seeded by seed
and epoch) and takes its slice of each global batch, so DDP sees the same global batches, hence the same
gradient steps, as one process; evaluation users are split across ranks without padding duplicates.

With LLM-augmented triples on the dataset, ``augment_rate`` x batch size of them (distinct, drawn afresh
per batch) are appended to every batch, so any model trains on them (LLMRec's batch augmentation); such
batches carry a fourth row, 1 for the augmented triples, which LLMRec's noisy-edge pruning reads.
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from gnnrec.data.dataset import RecDataset
from gnnrec.data.sampler import BPRSampler, shard_batches
from gnnrec.eval.evaluator import FullRankingEvaluator


class RecDataModule(L.LightningDataModule):
    def __init__(self, dataset: RecDataset, batch_size: int = 2048, eval_batch_size: int = 4096,
                 protocol: str = "strict", ks=(5, 10, 20, 50), seed: int = 999, augment_rate: float = 0.0,
                 negatives: str = "train_items"):
        super().__init__()
        self.dataset = dataset
        self.augmented = dataset.augmented_edges if augment_rate > 0 else None
        self.augment_rate = augment_rate
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.sampler = BPRSampler(dataset.train, negatives=negatives)
        self.evaluators = {s: FullRankingEvaluator(dataset, s, protocol, ks) for s in ("valid", "test")}

    def rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        rank, world = self.rank_world()
        triples = torch.from_numpy(self.sampler.sample(np.random.default_rng([self.seed, epoch])))
        batches = [triples[:, s] for s in shard_batches(triples.shape[1], self.batch_size, rank, world)]
        if self.augmented is not None and len(self.augmented):
            batches = self.with_augmented(batches, np.random.default_rng([self.seed, epoch, 1]), world)
        return DataLoader(batches, batch_size=None, shuffle=False)

    def with_augmented(self, batches: list[torch.Tensor], rng: np.random.Generator, world: int) -> list[torch.Tensor]:
        """Append to each batch this rank's share of ``augment_rate`` x global batch size augmented triples."""
        rank = self.rank_world()[0]
        out = []
        for batch in batches:
            m = min(len(self.augmented), round(self.augment_rate * batch.shape[1] * world))
            pick = rng.choice(len(self.augmented), size=m, replace=False)  # same draw on every rank
            part = m // world
            extra = torch.from_numpy(self.augmented[pick[rank * part : (rank + 1) * part]].T.copy())
            flags = torch.cat([torch.zeros(batch.shape[1], dtype=batch.dtype), torch.ones(extra.shape[1], dtype=batch.dtype)])
            out.append(torch.cat([torch.cat([batch, extra], dim=1), flags[None]]))
        return out

    def user_batches(self, split: str) -> DataLoader:
        rank, world = self.rank_world()
        users = torch.from_numpy(self.evaluators[split].users[rank::world])
        return DataLoader(list(torch.split(users, self.eval_batch_size)), batch_size=None, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self.user_batches("valid")

    def test_dataloader(self) -> DataLoader:
        return self.user_batches("test")
