"""Circuit discovery (paper §3.3, §4.2, App. E): IOI circuits over weights, neurons and heads.

* `metrics`: IOI accuracy / logit difference on a pre-tokenised evaluation split;
* `components`: which modules make up each granularity, and how masks reach `pruned`;
* `sweep`: per-seed curves over sparsities and the sparsest circuit above a threshold;
* `intervention`: how a removed component is ablated (zero, or its mean over reference prompts);
* `ablation`: ground truth by removing one component at a time;
* `agreement`: ROC AUC and Spearman of a ranking against ablation importance, signed and |drop|;
* `faithfulness`: MIB's CPR / CMD areas of the faithfulness-vs-size curve;
* `bootstrap`: percentile intervals and the paired AUC test between rankings;
* `published`: published circuits as data (GPT-2 small's IOI heads, Wang et al. 2022) and a
  head ranking's ROC AUC and per-class top-k recall against one;
* `export`: the `circuit` stage, writing curves, the circuit masks, a summary and a heat map;
* `tables`: the `circuit-tables` stage (CSV, Markdown, plots); its paired tests of each method
  against lrp are `paired`.
"""
