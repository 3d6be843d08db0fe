"""Helpers referenced by the world task YAMLs (`!function world_utils.<name>`).

The YAMLs name document fields or these functions rather than Jinja templates (`"{{prompt}}"`):
lm-eval compiles a template once per document, which took a third of a world model's evaluation."""

import re

from attrprune.world.lexicon import TOWNS


def ioi_choices(doc):
    return [doc["io"], doc["s"]]


def lives_in(doc):
    return f"{doc['name']} lives in"


def no_context(doc):
    return ""


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
