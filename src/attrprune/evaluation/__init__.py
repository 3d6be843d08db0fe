"""Evaluation of (pruned) models: lm-eval tasks; never imports lxt."""
