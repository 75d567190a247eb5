"""How well a supernet ranks architectures: statistics with bootstrap intervals, and their plots."""
from nas.ranking.metrics import (RANKING_STATISTICS, bootstrap_interval, kendall_tau, pearson_r,
                                 precision_at_top, ranking_figures, score_variance,
                                 seed_to_seed_tau, spearman_rho, top1_regret, top_k_overlap)
from nas.ranking.comparison import compare_with_baseline, mean_tau, mean_tau_resamples
from nas.ranking.plots import rank_plot, scatter_plot

__all__ = ["RANKING_STATISTICS", "bootstrap_interval", "compare_with_baseline", "mean_tau",
           "mean_tau_resamples", "kendall_tau", "pearson_r",
           "precision_at_top", "rank_plot", "ranking_figures", "scatter_plot", "score_variance",
           "seed_to_seed_tau", "spearman_rho", "top1_regret", "top_k_overlap"]
