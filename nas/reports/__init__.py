"""Offline tables over finished runs: training methods ranked side by side (`ranking_report`),
proxies against the NAS-Bench-201 table (`proxy_table`), searchers compared on a table
(`searcher_comparison`), a training-recipe ablation's table and plot (`ablation_report`)."""
