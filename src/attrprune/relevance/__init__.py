"""Component scores: one registry of scoring methods with one signature.

Every method maps (model, reference set, options) to a `Scores`: per-weight scores of every
prunable linear layer (keyed by HF module name), per-output-neuron scores, and per-head scores
of every attention block. `lrp` imports lxt (a process-global patch, applied only inside
`attrprune.relevance.lrp.lrp_patched`); nothing else in the package does.

Run: ``python -m attrprune scores --model-dir M --refset R.safetensors --method lrp --out S.safetensors``
"""

from attrprune.registry import METHODS
from attrprune.relevance.methods import ScoreOptions, Scores, compute_scores

__all__ = ["METHODS", "Scores", "ScoreOptions", "compute_scores"]
