"""A synthetic multimodal dataset with planted structure: the built-in default and the fast-test fixture.

Users and items belong to latent clusters; interactions are drawn from user-item affinities (plus an item
popularity term) without replacement; every modality is a noisy random linear view of the item latents,
so features carry the cluster signal and multimodal models have something real to exploit. Modalities named in
``noise_modalities`` are noise only (no view of the latents): a content channel a model should learn to ignore,
which is what modality attribution (``gnnrec ablate``) is tested against.
"""
from __future__ import annotations

import numpy as np

from gnnrec.data.dataset import RecDataset
from gnnrec.data.split import Interactions
from gnnrec.errors import ConfigError

GENRES = ["jazz", "cooking", "travel", "gaming", "comedy", "fitness", "science", "fashion", "pets", "music",
          "dance", "cars", "art", "news", "sports", "beauty"]


def sample_without_replacement(logits: np.ndarray, counts: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel-top-k: for each row draw ``counts[row]`` distinct columns with probability ~ softmax(logits)."""
    k = int(counts.max())
    keys = logits + rng.gumbel(size=logits.shape)
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    keep = np.arange(k)[None, :] < counts[:, None]
    rows = np.broadcast_to(np.arange(len(counts))[:, None], top.shape)
    return rows[keep], top[keep]


def make_synthetic(n_users: int = 2000, n_items: int = 1000, n_clusters: int = 8, latent_dim: int = 16,
                   modalities: dict[str, int] | None = None, mean_interactions: float = 20.0,
                   min_interactions: int = 5, affinity_scale: float = 2.0, feature_noise: float = 0.5,
                   split: str = "mmrec", seed: int = 0, block_size: int = 1024,
                   noise_modalities: list[str] | tuple = ()) -> RecDataset:
    modalities = {"image": 64, "text": 48} if modalities is None else dict(modalities)
    unknown = sorted(set(noise_modalities) - set(modalities))
    if unknown:
        raise ConfigError(f"data.synthetic.noise_modalities names {unknown}, not among the modalities "
                          f"{sorted(modalities)}")
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(n_clusters, latent_dim))
    user_cluster = rng.integers(n_clusters, size=n_users)
    item_cluster = rng.integers(n_clusters, size=n_items)
    user_latent = centroids[user_cluster] + 0.6 * rng.normal(size=(n_users, latent_dim))
    item_latent = centroids[item_cluster] + 0.6 * rng.normal(size=(n_items, latent_dim))
    user_latent /= np.linalg.norm(user_latent, axis=1, keepdims=True)
    item_latent /= np.linalg.norm(item_latent, axis=1, keepdims=True)
    popularity = rng.normal(scale=0.7, size=n_items)
    max_count = max(min_interactions, n_items // 4)
    counts = np.clip(rng.geometric(1.0 / mean_interactions, size=n_users) + min_interactions - 1,
                     min_interactions, max_count)
    users, items = [], []
    for start in range(0, n_users, block_size):  # blocks bound memory at block_size x n_items
        stop = min(start + block_size, n_users)
        logits = affinity_scale * latent_dim ** 0.5 * user_latent[start:stop] @ item_latent.T + popularity
        rows, cols = sample_without_replacement(logits, counts[start:stop], rng)
        users.append(rows + start)
        items.append(cols)
    users, items = np.concatenate(users), np.concatenate(items)
    features = {}
    for i, (name, dim) in enumerate(modalities.items()):
        proj = rng.normal(size=(latent_dim, dim)) / latent_dim ** 0.5
        noise = feature_noise * (1 + i) * rng.normal(size=(n_items, dim)) / dim ** 0.5
        signal = 0.0 if name in noise_modalities else item_latent @ proj
        features[name] = (signal + noise).astype(np.float32)
    names = np.array([GENRES[c % len(GENRES)] for c in range(n_clusters)], dtype=object)
    titles = np.array([f"{names[c]} video #{i}" for i, c in enumerate(item_cluster)], dtype=object)
    timestamps = rng.permutation(len(users)).astype(np.float64)
    log = Interactions("synthetic", users, items, n_users, n_items, timestamps,
                       item_info={"title": titles, "cluster": item_cluster},
                       user_info={"cluster": user_cluster}, features=features, source="synthetic")
    return log.split(split, seed=seed)
