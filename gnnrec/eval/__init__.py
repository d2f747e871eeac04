"""Full-ranking evaluation with the metrics, tie rule and protocols of the reference."""
from gnnrec.eval.evaluator import DEFAULT_KS, PROTOCOLS, FullRankingEvaluator
from gnnrec.eval.metrics import METRICS, ranking_metrics, topk_items

__all__ = ["FullRankingEvaluator", "ranking_metrics", "topk_items", "METRICS", "PROTOCOLS", "DEFAULT_KS"]
