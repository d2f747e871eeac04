"""Gaussian diffusion over users' interaction vectors (DiffRec / DiffMM), batched, and the sparse graphs it makes.

A user's row x0 of the training matrix (items-dim, 0/1) is noised as x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps
(a_t the cumulative product of 1 - beta over a short linear schedule); a denoiser MLP predicts x0 from x_t and
t. Generation starts from x0 itself (or x0 noised ``sampling_steps`` times), runs the reverse steps with the
posterior mean, and keeps the top-k items per user: a sparse users x items graph. Rows are only ever dense
for one block of users at a time.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def dense_rows(indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor, n_cols: int) -> torch.Tensor:
    """The 0/1 rows ``rows`` of a CSR pattern (``indptr``, ``indices``) as a dense (len(rows), n_cols) block."""
    starts, counts = indptr[rows], indptr[rows + 1] - indptr[rows]
    which = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), counts)
    first = torch.cumsum(counts, 0) - counts  # position of each row's first entry in the flattened output
    pos = torch.arange(int(counts.sum()), device=rows.device) - first[which] + starts[which]
    out = torch.zeros(len(rows), n_cols, device=rows.device)
    out[which, indices[pos]] = 1.0
    return out


class Denoiser(nn.Module):
    """DiffRec's MLP: [x_t, time embedding] -> hidden dims (tanh) -> back to n_items (no final activation).

    Weights ~ N(0, 2 / (fan_in + fan_out)) and biases ~ N(0, 0.001), as the DiffMM code initialises them.
    """

    def __init__(self, n_items: int, hidden: list[int], time_dim: int = 10, norm: bool = False, dropout: float = 0.5):
        super().__init__()
        self.time_dim, self.norm = time_dim, norm
        self.time_layer = nn.Linear(time_dim, time_dim)
        ins = [n_items + time_dim, *hidden[::-1]]
        outs = [*hidden, n_items]
        self.in_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(ins[:-1], ins[1:]))
        self.out_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(outs[:-1], outs[1:]))
        self.drop = nn.Dropout(dropout)
        for layer in [self.time_layer, *self.in_layers, *self.out_layers]:
            nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / sum(layer.weight.shape)))
            nn.init.normal_(layer.bias, 0.0, 0.001)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        half = self.time_dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half, 1))
        angles = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        if self.time_dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return self.time_layer(emb)

    def forward(self, x: torch.Tensor, t: torch.Tensor, dropout: bool = True) -> torch.Tensor:
        if self.norm:
            x = F.normalize(x)
        if dropout:
            x = self.drop(x)
        h = torch.cat([x, self.time_embedding(t)], dim=-1)
        for layer in self.in_layers:
            h = torch.tanh(layer(h))
        for k, layer in enumerate(self.out_layers):
            h = layer(h)
            if k < len(self.out_layers) - 1:
                h = torch.tanh(h)
        return h


class GaussianDiffusion(nn.Module):
    """The noise schedule (DiffRec's linear-variance one) and the forward, loss and reverse computations."""

    def __init__(self, steps: int = 5, noise_scale: float = 0.1, noise_min: float = 1e-4, noise_max: float = 0.02,
                 beta_fixed: bool = True):
        super().__init__()
        self.steps = steps
        variance = np.linspace(noise_scale * noise_min, noise_scale * noise_max, steps, dtype=np.float64)
        alpha_bar = 1 - variance
        betas = np.concatenate([[1 - alpha_bar[0]], np.minimum(1 - alpha_bar[1:] / alpha_bar[:-1], 0.999)])
        if beta_fixed:
            betas[0] = 1e-4
        betas = torch.tensor(betas, dtype=torch.float64)
        acp = torch.cumprod(1 - betas, 0)
        acp_prev = torch.cat([torch.ones(1, dtype=torch.float64), acp[:-1]])
        post_var = betas * (1 - acp_prev) / (1 - acp)
        tables = {
            "sqrt_acp": acp.sqrt(), "sqrt_one_minus_acp": (1 - acp).sqrt(), "snr": acp / (1 - acp),
            "coef_x0": betas * acp_prev.sqrt() / (1 - acp), "coef_xt": (1 - acp_prev) * (1 - betas).sqrt() / (1 - acp),
            "post_log_var": torch.log(torch.cat([post_var[1:2], post_var[1:]])),
        }
        for name, value in tables.items():
            self.register_buffer(name, value.float(), persistent=False)

    @staticmethod
    def _at(table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return table[t][:, None]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self._at(self.sqrt_acp, t) * x0 + self._at(self.sqrt_one_minus_acp, t) * noise

    def training_terms(self, model: nn.Module, x0: torch.Tensor, generator: torch.Generator | None = None):
        """(per-row ELBO-weighted MSE, predicted x0) for one uniformly drawn step per row."""
        t = torch.randint(0, self.steps, (len(x0),), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        pred = model(self.q_sample(x0, t, noise), t)
        mse = (x0 - pred).pow(2).mean(dim=1)
        weight = torch.where(t == 0, torch.ones_like(mse), self.snr[(t - 1).clamp(min=0)] - self.snr[t])
        return weight * mse, pred

    @torch.no_grad()
    def generate(self, model: nn.Module, x0: torch.Tensor, sampling_steps: int = 0, sampling_noise: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Reverse process from x0 (noised ``sampling_steps`` steps first), posterior means; noise optional."""
        x = x0
        if sampling_steps > 0:
            t = torch.full((len(x0),), sampling_steps - 1, device=x0.device, dtype=torch.long)
            x = self.q_sample(x0, t, torch.randn(x0.shape, device=x0.device, generator=generator))
        for step in range(self.steps - 1, -1, -1):
            t = torch.full((len(x0),), step, device=x0.device, dtype=torch.long)
            x = self._at(self.coef_x0, t) * model(x, t, dropout=False) + self._at(self.coef_xt, t) * x
            if sampling_noise and step > 0:
                noise = torch.randn(x.shape, device=x.device, generator=generator)
                x = x + torch.exp(0.5 * self._at(self.post_log_var, t)) * noise
        return x


def bipartite_from_topk(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int,
                        keep_rate: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Normalised D^-1/2 (A + I) D^-1/2 of the bipartite graph with edges (users[e], items[e]), as torch CSR.

    With ``keep_rate`` < 1 each user-item edge (both directions together, so the matrix stays symmetric) and
    each self-loop is kept with that probability and the kept values are divided by it (DiffMM's edge dropout).
    """
    n = n_users + n_items
    dev = users.device
    loops = torch.arange(n, device=dev)
    rows = torch.cat([users, items + n_users, loops])
    cols = torch.cat([items + n_users, users, loops])
    deg = torch.bincount(rows, minlength=n).float()
    inv = deg.pow(-0.5)
    vals = inv[rows] * inv[cols]
    if keep_rate < 1.0:
        keep_edges = torch.rand(len(users), device=dev, generator=generator) < keep_rate
        keep_loops = torch.rand(n, device=dev, generator=generator) < keep_rate
        keep = torch.cat([keep_edges, keep_edges, keep_loops])
        rows, cols, vals = rows[keep], cols[keep], vals[keep] / keep_rate
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n, n), check_invariants=False).coalesce()
    return coo.to_sparse_csr()
