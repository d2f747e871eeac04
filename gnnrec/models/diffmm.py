"""DiffMM (Jiang et al., ACM MM 2024): multi-modal graph diffusion for recommendation.

Per modality m a denoiser learns to reconstruct users' interaction vectors x0 from noised ones (Gaussian
diffusion, ELBO-weighted MSE) plus a modality-aware signal-injection loss
msi_weight x ||x0_hat F_m - x0 E_items||^2 (F_m the projected features, E_items the ID embeddings, both
fixed for it). Each epoch: one pass of denoiser training over all users, then for every user block the
reverse process from x0 keeps the top ``rebuild_k`` items: a sparse modality graph G_m (self-loops,
D^-1/2 (A+I) D^-1/2, edge dropout ``keep_rate`` in training).
Forward, with A the normalised training graph (self-loops) and X = [E_users; E_items]:
  h_m = A [E_users; norm(F_m)]; h_m += A [h_m(users); E_items]; h_m += generated_weight x G_m X;
  z = sum_m softmax(w)_m h_m; output = sum of GCN layers 0..L of z over A + modal_residual x norm(z).
Loss = BPR + reg_weight x (||E_users||^2 + ||E_items||^2) + ssl_weight x InfoNCE between the output and each
modality view v_m = GCN_A(G_m [E_users; norm(F_m)]) (``cl_views: main``, the TikTok setting) or between
pairs of views (``cl_views: modal``), for the batch's users and positive items, over all users / items.

Follows the authors' code (HKUDS/DiffMM; MMRec has no port) except: the user-item interaction rows are
gathered per user block from the sparse training matrix (the code densifies users x items); edge dropout
keeps or drops both directions of an edge together, so the generated graphs stay symmetric; evaluation
uses the epoch's generated graphs without edge dropout (the code evaluates on the dropped ones), made
afresh from the denoisers when missing (a reloaded checkpoint). Initialisation as the code: Xavier-uniform
ID embeddings, torch-default nn.Linear projections of the fixed features (``--trans 1``, the TikTok
setting), denoisers N(0, 2/(fan_in+fan_out)); the regulariser is on the full ID tables, as the code does.
The code draws BPR negatives from all items, not only from those seen in training (gnnrec's default, MMRec's
rule): an item never seen in training has only its self-loop, so its vector is its normalised features at
full weight, and only such negatives push it down (TikTok: 465 such items). configs/diffmm_tiktok.yaml sets
``train.negatives: all_items`` as the code does.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.errors import ConfigError
from gnnrec.graphs.adjacency import bipartite_adjacency, sym_normalize, to_torch_csr
from gnnrec.graphs.diffusion import Denoiser, GaussianDiffusion, bipartite_from_topk, dense_rows
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.models.base import Recommender
from gnnrec.models.lightgcn import propagate_sum
from gnnrec.models.losses import info_nce
from gnnrec.models.modalities import ModalityProjections, require_features

CL_VIEWS = ("main", "modal")


class DiffMM(Recommender):
    propagation_rule = "lightgcn"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 1, reg_weight: float = 1e-4,
                 ssl_weight: float = 1e-2, temperature: float = 0.5, cl_views: str = "main",
                 generated_weight: float = 0.2, modal_residual: float = 0.5, keep_rate: float = 0.5,
                 rebuild_k: int = 5, msi_weight: float = 0.1, diffusion_steps: int = 5, noise_scale: float = 0.1,
                 noise_min: float = 1e-4, noise_max: float = 0.02, sampling_steps: int = 0,
                 sampling_noise: bool = False, denoise_dims: list | tuple = (1000,), time_emb_dim: int = 10,
                 denoise_norm: bool = False, denoise_dropout: float = 0.5, diffusion_batch_size: int = 1024,
                 diffusion_lr: float | None = None, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, reg_weight=reg_weight, **kwargs)
        feats = require_features(dataset, "diffmm")
        self._check(dataset.n_items, len(feats))
        self.init_id_embeddings(embedding_dim)
        self.modalities = ModalityProjections(feats, embedding_dim, trainable=False)
        self.names = self.modalities.names
        self.modal_weight = nn.Parameter(torch.full((len(self.names),), 1.0 / len(self.names)))
        self.diffusion = GaussianDiffusion(diffusion_steps, noise_scale, noise_min, noise_max)
        self.denoisers = nn.ModuleDict({n: Denoiser(self.n_items, list(denoise_dims), time_emb_dim, denoise_norm,
                                                    denoise_dropout) for n in self.names})
        # the denoisers train in their own pass at each epoch start (diffusion_epoch), not through the loss, so
        # DDP must not wait for their gradients; every rank trains the same copy (all users, the same seeded draws)
        self._ddp_params_and_buffers_to_ignore = [f"denoisers.{n}" for n, _ in self.denoisers.named_parameters()]
        graph = dataset.graph.tocsr()
        self._indptr = torch.from_numpy(graph.indptr.astype("int64"))
        self._indices = torch.from_numpy(graph.indices.astype("int64"))
        adj = bipartite_adjacency(graph)  # with self-loops, as the DiffMM code normalises it
        self._adj = FixedSparse(to_torch_csr(sym_normalize(adj + sp.identity(adj.shape[0], np.float32, "csr"))))
        self._train_graphs: dict[str, FixedSparse] | None = None  # this epoch's, edge-dropped
        self._eval_graphs: dict[str, FixedSparse] | None = None  # this epoch's, complete
        self._diffusion_opt = None

    def _check(self, n_items: int, n_modalities: int) -> None:
        h = self.hparams
        checks = [
            ("num_layers", h.num_layers >= 0, "an integer >= 0"),
            ("ssl_weight", h.ssl_weight >= 0, ">= 0"), ("temperature", h.temperature > 0, "> 0"),
            ("cl_views", h.cl_views in CL_VIEWS and (h.cl_views == "main" or n_modalities > 1),
             f"one of {CL_VIEWS} ('modal' needs two modalities or more)"),
            ("keep_rate", 0 < h.keep_rate <= 1, "in (0, 1]"),
            ("rebuild_k", 1 <= h.rebuild_k <= n_items, f"in [1, {n_items}] (the number of items)"),
            ("msi_weight", h.msi_weight >= 0, ">= 0"),
            ("diffusion_steps", h.diffusion_steps >= 1, ">= 1"),
            ("sampling_steps", 0 <= h.sampling_steps <= h.diffusion_steps, "in [0, model.diffusion_steps]"),
            ("noise_scale", h.noise_scale > 0, "> 0"),
            ("noise_min", 0 < h.noise_min <= h.noise_max, "in (0, model.noise_max]"),
            ("noise_max", h.noise_scale * h.noise_max < 1, "< 1 / model.noise_scale"),
            ("denoise_dims", len(h.denoise_dims) > 0 and all(int(d) == d and d > 0 for d in h.denoise_dims),
             "a non-empty list of positive integers"),
            ("time_emb_dim", h.time_emb_dim >= 1, ">= 1"), ("denoise_dropout", 0 <= h.denoise_dropout < 1, "in [0, 1)"),
            ("diffusion_batch_size", h.diffusion_batch_size >= 1, ">= 1"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ConfigError(f"model.{name} must be {what}, got {getattr(h, name)!r}")

    # --- the diffusion part -----------------------------------------------------------------------
    def _generator(self, epoch: int) -> torch.Generator:
        # the same draws on every DDP rank: seeded by the run seed and the epoch
        gen = torch.Generator(device=self.device)
        gen.manual_seed((torch.initial_seed() % 2**32) * 100_003 + epoch)
        return gen

    def _rows(self, users: torch.Tensor) -> torch.Tensor:
        self._indptr, self._indices = self._indptr.to(users.device), self._indices.to(users.device)
        return dense_rows(self._indptr, self._indices, users, self.n_items)

    def _user_blocks(self, generator: torch.Generator | None = None):
        order = (torch.randperm(self.n_users, device=self.device, generator=generator) if generator is not None
                 else torch.arange(self.n_users, device=self.device))
        return order.split(self.hparams.diffusion_batch_size)

    def diffusion_epoch(self, generator: torch.Generator) -> dict[str, float]:
        """One pass of denoiser training over all users (shuffled blocks); returns the mean loss per modality."""
        if self._diffusion_opt is None:
            lr = self.hparams.diffusion_lr or self.hparams.lr
            self._diffusion_opt = torch.optim.Adam(self.denoisers.parameters(), lr=lr)
        with torch.no_grad():  # fixed targets of the signal-injection loss
            item_ids = self.item_emb.weight.detach()
            feats = {n: f.detach() for n, f in self.modalities().items()}
        totals = dict.fromkeys(self.names, 0.0)
        blocks = self._user_blocks(generator)
        self.denoisers.train()
        with torch.enable_grad():
            for users in blocks:
                x0 = self._rows(users)
                target = x0 @ item_ids
                loss = 0
                for name in self.names:
                    elbo, x0_hat = self.diffusion.training_terms(self.denoisers[name], x0, generator)
                    msi = (x0_hat @ feats[name] - target).pow(2).mean(dim=1)
                    part = elbo.mean() + self.hparams.msi_weight * msi.mean()
                    totals[name] += float(part.detach()) / len(blocks)
                    loss = loss + part
                self._diffusion_opt.zero_grad()
                loss.backward()
                self._diffusion_opt.step()
        return totals

    @torch.no_grad()
    def generate_topk(self, name: str, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n_users, rebuild_k) items of the modality-``name`` graph, made block by block from each x0."""
        h = self.hparams
        out = []
        for users in self._user_blocks():
            x = self.diffusion.generate(self.denoisers[name], self._rows(users), h.sampling_steps, h.sampling_noise,
                                        generator)
            out.append(torch.topk(x, h.rebuild_k, dim=1).indices)
        return torch.cat(out)

    def build_graphs(self, keep_rate: float, generator: torch.Generator | None = None,
                     topk: dict[str, torch.Tensor] | None = None) -> dict[str, FixedSparse]:
        topk = {n: self.generate_topk(n, generator) for n in self.names} if topk is None else topk
        users = torch.arange(self.n_users, device=self.device).repeat_interleave(self.hparams.rebuild_k)
        return {n: FixedSparse(bipartite_from_topk(users, topk[n].reshape(-1), self.n_users, self.n_items,
                                                   keep_rate, generator)) for n in self.names}

    def refresh_graphs(self, epoch: int) -> dict[str, float]:
        """Train the denoisers for one pass, then generate this epoch's modality graphs (DiffMM's epoch start)."""
        gen = self._generator(epoch)
        losses = self.diffusion_epoch(gen)
        topk = {n: self.generate_topk(n, gen) for n in self.names}
        self._eval_graphs = self.build_graphs(1.0, gen, topk)
        self._train_graphs = (self._eval_graphs if self.hparams.keep_rate >= 1
                              else self.build_graphs(self.hparams.keep_rate, gen, topk))
        return losses

    def on_train_epoch_start(self):
        losses = self.refresh_graphs(self.current_epoch)
        for name, value in losses.items():
            self.log(f"train/diffusion_{name}", value, on_step=False, on_epoch=True, sync_dist=True)

    def on_load_checkpoint(self, checkpoint):
        self._train_graphs = self._eval_graphs = None  # made afresh from the loaded denoisers

    def graphs(self) -> dict[str, FixedSparse]:
        if self._eval_graphs is None:
            self._eval_graphs = self.build_graphs(1.0)
        return self._eval_graphs

    # --- the recommender ----------------------------------------------------------------------------
    def modality_inputs(self) -> dict[str, torch.Tensor]:
        return {n: torch.cat([self.user_emb.weight, F.normalize(f, dim=-1)]) for n, f in self.modalities().items()}

    def forward(self, graphs: dict[str, FixedSparse] | None = None):
        graphs = self.graphs() if graphs is None else graphs
        h = self.hparams
        ids = torch.cat([self.user_emb.weight, self.item_emb.weight])
        weights = torch.softmax(self.modal_weight, 0)
        mixed = 0
        for k, (name, x) in enumerate(self.modality_inputs().items()):
            view = self._adj @ x
            view = view + self._adj @ torch.cat([view[: self.n_users], self.item_emb.weight])
            view = view + h.generated_weight * (graphs[name] @ ids)
            mixed = mixed + weights[k] * view
        out = propagate_sum(self._adj, mixed, h.num_layers) + h.modal_residual * F.normalize(mixed, dim=-1)
        return out[: self.n_users], out[self.n_users :]

    def modality_views(self, graphs: dict[str, FixedSparse]) -> list[torch.Tensor]:
        return [propagate_sum(self._adj, graphs[n] @ x, self.hparams.num_layers) for n, x in self.modality_inputs().items()]

    def loss(self, users, pos, neg):
        graphs = self._train_graphs if self._train_graphs is not None else self.graphs()
        h = self.hparams
        user_emb, item_emb = self(graphs)
        bpr = self.bpr_loss(users, pos, neg, user_emb, item_emb)
        tables = [self.user_emb.weight, self.item_emb.weight]
        reg = h.reg_weight * (sum(t.pow(2).sum() for t in tables) if h.reg_norm == "squared"
                              else sum(t.norm() for t in tables))
        parts = {"bpr": bpr}
        if h.ssl_weight:
            views = self.modality_views(graphs)
            main = torch.cat([user_emb, item_emb])
            if h.cl_views == "main":
                pairs = [(main, v) for v in views]
            else:
                pairs = [(views[a], views[b]) for a in range(len(views)) for b in range(a + 1, len(views))]
            cl = sum(info_nce(a[users], b[users], b[: self.n_users], h.temperature)
                     + info_nce(a[pos + self.n_users], b[pos + self.n_users], b[self.n_users :], h.temperature)
                     for a, b in pairs)
            parts["cl"] = cl
            return bpr + reg + h.ssl_weight * cl, parts
        return bpr + reg, parts

    def configure_optimizers(self):
        # the denoisers have their own optimiser, stepped in the diffusion pass at each epoch start
        params = [p for n, p in self.named_parameters() if not n.startswith("denoisers.")]
        return torch.optim.Adam(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
