"""LLMRec-style graph augmentation: LLM-chosen edges, item attributes and user profiles, made offline."""
from gnnrec.augment.edges import augment_edges, candidate_pools, read_edges, write_edges
from gnnrec.augment.parse import TitleMatcher, parse_edge_answer, parse_fields
from gnnrec.augment.run import run_augment

__all__ = ["augment_edges", "candidate_pools", "read_edges", "write_edges", "TitleMatcher", "parse_edge_answer",
           "parse_fields", "run_augment"]
