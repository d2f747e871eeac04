"""Graph construction shared by the models."""
from gnnrec.graphs.adjacency import bipartite_adjacency, normalized_bipartite, sym_normalize, to_torch_csr

__all__ = ["bipartite_adjacency", "normalized_bipartite", "sym_normalize", "to_torch_csr"]
