"""Expressiveness metrics of "How Expressive are GNNs in Recommendation?" (Cai et al., CIKM 2023)."""
from gnnrec.expressiveness.closeness import ClosenessResult, shortest_paths_from_users, topological_closeness

__all__ = ["ClosenessResult", "shortest_paths_from_users", "topological_closeness"]
from gnnrec.expressiveness.structure import graph_isomorphism, node_automorphism, propagate_symmetric  # noqa: E402
from gnnrec.expressiveness.wl import automorphism_orbits, wl_colors, wl_distinguishes  # noqa: E402

__all__ += ["graph_isomorphism", "node_automorphism", "propagate_symmetric", "automorphism_orbits", "wl_colors",
            "wl_distinguishes"]
