"""Helpers referenced by the world task YAMLs (`!function world_utils.<name>`)."""

import re

from attrprune.world.lexicon import TOWNS


def towns(doc):
    return list(TOWNS)


def process_perplexity(doc, results):
    (loglikelihood,) = results
    text = doc["text"]
    n_bytes = len(text.encode("utf-8"))
    words = len(re.split(r"\s+", text.strip()))
    return {
        "word_perplexity": (loglikelihood, words),
        "byte_perplexity": (loglikelihood, n_bytes),
        "bits_per_byte": (loglikelihood, n_bytes),
    }
