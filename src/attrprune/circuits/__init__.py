"""Circuit discovery (paper §3.3, §4.2, App. E): IOI circuits over weights, neurons and heads.

* `metrics`: IOI accuracy / logit difference on a pre-tokenised evaluation split;
* `components`: which modules make up each granularity, and how masks reach `pruned`;
* `sweep`: per-seed curves over sparsities and the sparsest circuit above a threshold;
* `ablation`: ground truth by removing one component at a time;
* `agreement`: ROC AUC and Spearman of a ranking against ablation importance;
* `export`: the `circuit` stage, writing curves, the circuit masks, a summary and a heat map.
"""
