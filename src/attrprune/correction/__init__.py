"""Targeted correction (paper §3.4, §4.3, App. F): remove an unwanted behaviour (toxic replies,
repetition loops) by pruning the components with the lowest contrastive relevance
R_general − R_unwanted, and measure the behaviour and general perplexity against k.

* `contrastive`: R_diff from two score sets, each side normalised ("sum", "max" or "none");
* `run`: the `correction` stage: per k, prune exactly k components (MLP neurons or weight
  elements), generate greedily and by seeded sampling on held-out behaviour prompts, score
  toxicity or the response uniqueness ratio (over a fixed window of the first tokens, and of
  the reply), continue control prompts to measure collateral damage (replies unchanged from
  k = 0, their ratio, length and closing quote), evaluate perplexity; writes curve.json and
  generations.jsonl; what it measures at each k is `measure`;
* `prompts`: the `behaviour-prompts` stage of hub models: trigger prompts (reference and
  evaluation splits) and control prompts selected by the model's own greedy continuations;
* `tables`: the `correction-tables` stage: tidy CSV, Markdown tables (with the best operating
  point under a perplexity and a control-fidelity threshold), trade-off plots and a
  before/after examples table from curve.json files; the operating points (best k per method,
  and k chosen on validation prompts) are `operating`.
"""
