"""The built-in world: a generated corpus and small Llama / OPT models trained on it."""
