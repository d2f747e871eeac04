"""All three expressiveness levels for one model, next to its accuracy: what `gnnrec expressiveness` prints."""
from __future__ import annotations

import numpy as np

from gnnrec.data.dataset import RecDataset
from gnnrec.expressiveness.closeness import topological_closeness
from gnnrec.expressiveness.structure import graph_isomorphism, node_automorphism
from gnnrec.graphs.adjacency import bipartite_adjacency


def expressiveness_report(model, dataset: RecDataset, users: int = 1000, pairs_per_user: int = 100,
                          seed: int = 0, nauty_limit: int = 5000) -> dict:
    rule = getattr(model, "propagation_rule", "lightgcn")
    layers = getattr(model, "num_layers", 0)
    closeness = topological_closeness(dataset.train, model.score_fn(), n_users=users, pairs_per_user=pairs_per_user,
                                      seed=seed)
    sides = np.concatenate([np.zeros(dataset.n_users, np.int64), np.ones(dataset.n_items, np.int64)])
    auto = node_automorphism(bipartite_adjacency(dataset.train), rule, layers, node_colors=sides,
                             nauty_limit=nauty_limit)
    iso = graph_isomorphism(rule, layers)
    return {"rule": rule, "layers": layers, "closeness": closeness.as_dict(), "automorphism": auto.as_dict(),
            "isomorphism": iso.as_dict()}


def format_report(name: str, accuracy: dict, rep: dict) -> str:
    c, a, i = rep["closeness"], rep["automorphism"], rep["isomorphism"]
    lines = [
        f"{name}: propagation '{rep['rule']}', {rep['layers']} layers",
        f"  accuracy (test)        Recall@20 {accuracy.get('recall@20', float('nan')):.4f}   "
        f"NDCG@20 {accuracy.get('ndcg@20', float('nan')):.4f}",
        f"  link level  (closeness) ordered correctly {c['accuracy']:.4f} "
        f"[95% CI {c['ci95'][0]:.4f}-{c['ci95'][1]:.4f}], {c['accuracy_untied']:.4f} of untied pairs, "
        f"ties {c['tie_share']:.4f}; {c['pairs']} pairs from {c['users']} users",
        f"  node level  (automorphism, {a['classes']} of {a['nodes']} nodes) same class coincide "
        f"{a['coincide_within_class']:.4f}, different classes separated {a['separate_across_classes']:.4f} "
        f"(1-WL bound {a['wl_separate_across_classes']:.4f})",
        f"  graph level (isomorphism suite) told apart {i['distinguished']:.4f} (1-WL bound {i['wl_bound']:.4f}), "
        f"isomorphic controls separated {i['isomorphic_separated']:.4f}",
    ]
    return "\n".join(lines)
