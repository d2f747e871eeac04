"""VBPR (He & McAuley, AAAI 2016): item vector = ID embedding concatenated with a linear projection of the
item's (concatenated, frozen) features; the user vector has both halves. BPR with L2 regularisation.

Initialisation as MMRec (src/models/vbpr.py): ID tables Xavier-uniform (its lines 31-32, plain Parameters that
its later ``self.apply(xavier_normal_initialization)`` at line 45 does not touch); the feature projection
Xavier-normal with zero bias (that ``apply``, common/init.py lines 8-24).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.models.base import Recommender
from gnnrec.models.modalities import require_features


class VBPR(Recommender):
    propagation_rule = "mf"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, **kwargs)
        feats = require_features(dataset, "vbpr")
        raw = np.concatenate([feats[n] for n in sorted(feats)], axis=1).astype(np.float32)
        self.register_buffer("features", torch.from_numpy(raw), persistent=False)
        self.user_emb = nn.Embedding(self.n_users, 2 * embedding_dim)
        self.item_emb = nn.Embedding(self.n_items, embedding_dim)
        self.item_linear = nn.Linear(raw.shape[1], embedding_dim)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        nn.init.xavier_normal_(self.item_linear.weight)
        nn.init.zeros_(self.item_linear.bias)

    def forward(self):
        return self.user_emb.weight, torch.cat([self.item_emb.weight, self.item_linear(self.features)], dim=1)
