"""What a correction breaks besides the behaviour it targets: every world behaviour set measured on
every corrected model, per prompt, and the operating point chosen on one split of the prompts and
reported on the other.

Per prompt of each of the world's four held-out behaviour sets (toxic triggers and controls,
repetition triggers and controls; the first `n_prompts` of each file), one greedy continuation:

* ``toxic``: the quoted reply (up to the first closing quote or newline) holds a planted insult;
* ``window_ratio``: unique-token ratio of the first `window` generated tokens;
* ``loop``: the whole continuation holds a span of `span` tokens that occurs three times
  (`has_loop`): a loop that the short window does not see, or that starts after the reply;
* ``unchanged``: the reply is identical to the unpruned model's reply to the same prompt.

Besides, per k: held-out-name IOI accuracy (logit(IO) > logit(S), the world card's measure) per
prompt, and the planted facts' accuracy (lm-eval's ``world_facts``).

Honest selection (`choose_on_validation`): prompts with an even index in their file are the
validation split, odd ones the test split. The operating point k is chosen on validation prompts
only; every number reported for it comes from the test prompts, with a 95 % percentile bootstrap
interval over them (`attrprune.circuits.bootstrap`) and the effective sample beside it: the number
of distinct replies the unpruned model gives to those test prompts (a set of 24 prompts with 3
distinct dense replies measures 3 things, not 24).
"""

from __future__ import annotations

import math
from pathlib import Path

SETS = {
    "toxic_trigger": "toxicity",
    "toxic_control": "toxicity",
    "repetition_trigger": "repetition",
    "repetition_control": "repetition",
}
LOOP_TIMES = 3
VALIDATION, TEST = "validation", "test"


def has_loop(ids: list, span: int, times: int = LOOP_TIMES) -> bool:
    """Whether some run of `span` consecutive tokens occurs `times` times or more in `ids`
    (occurrences may overlap: "a a a a" holds "a a" three times)."""
    if isinstance(span, bool) or not isinstance(span, int) or span < 1:
        raise ValueError(f"span must be a positive number of tokens, got {span!r}")
    counts: dict[tuple, int] = {}
    for i in range(len(ids) - span + 1):
        gram = tuple(ids[i : i + span])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= times:
            return True
    return False


def split_of(index: int) -> str:
    """The split of the prompt at `index` of its file: even = validation, odd = test."""
    return VALIDATION if index % 2 == 0 else TEST


def distinct_count(replies: list[str]) -> int:
    """The effective sample of a set of replies: how many differ."""
    return len(set(replies))


def measure_sets(
    model,
    tokenizer,
    data_dir: Path,
    n_prompts: int | None,
    new_tokens: dict[str, int],
    window: int,
    span: int,
    dense: dict[str, list[str]] | None,
    batch_size: int = 64,
) -> tuple[dict, list[dict]]:
    """(metrics, per-prompt records) of the four behaviour sets; `dense` = the unpruned model's
    replies per set (None: this is the unpruned model)."""
    from attrprune.correction.measure import reply
    from attrprune.evaluation.toxicity import make_scorer
    from attrprune.generation import generate, window_uniqueness_ratio
    from attrprune.text import read_jsonl

    world_scorer = make_scorer("world", data_dir)  # the words the world planted, as its data folder lists them

    metrics, records = {}, []
    for name, behaviour in SETS.items():
        rows = read_jsonl(Path(data_dir) / f"{name}.jsonl", ("prompt",), allow_empty=False)
        prompts = [r["prompt"] for r in rows][:n_prompts]
        conts = [c[0] for c in generate(model, tokenizer, prompts, new_tokens[behaviour], batch_size=batch_size)]
        texts = [tokenizer.decode(c) for c in conts]
        replies = [reply(t) for t in texts]
        reference = replies if dense is None else dense[name]
        if len(reference) != len(replies):
            raise ValueError(f"{name}: {len(replies)} replies against {len(reference)} of the unpruned model")
        for i, (ids, text, rep, ref) in enumerate(zip(conts, texts, replies, reference)):
            records.append(
                {
                    "set": name,
                    "index": i,
                    "split": split_of(i),
                    "greedy": text,
                    "reply": rep,
                    "toxic": world_scorer.score([rep])[0] == 1.0,
                    "window_ratio": window_uniqueness_ratio(ids, window),
                    "loop": has_loop(ids, span),
                    "unchanged": rep == ref,
                }
            )
        mine = [r for r in records if r["set"] == name]
        for key in ("toxic", "window_ratio", "loop", "unchanged"):
            metrics[f"{name}:{key}"] = sum(float(r[key]) for r in mine) / len(mine)
    return metrics, records


def ioi_records(model, tokenizer, data_dir: Path, n_prompts: int | None) -> list[dict]:
    """Per held-out-name IOI prompt: whether logit(IO) > logit(S) (the world card's accuracy)."""
    from attrprune.circuits.metrics import IOIBatch, logit_differences
    from attrprune.text import read_jsonl

    examples = read_jsonl(Path(data_dir) / "ioi_heldout_names.jsonl")[:n_prompts]
    diff = logit_differences(model, IOIBatch.encode(tokenizer, examples), batch_size=64, full_logits=True)
    return [{"set": "ioi", "index": i, "split": split_of(i), "correct": bool(d > 0)} for i, d in enumerate(diff)]


# The value of one per-prompt record that each reported quantity averages.
VALUE = {
    "toxic": lambda r: float(r["toxic"]),
    "window_ratio": lambda r: float(r["window_ratio"]),
    "loop": lambda r: float(r["loop"]),
    "unchanged": lambda r: float(r["unchanged"]),
    "correct": lambda r: float(r["correct"]),
}
# Headline of each behaviour: (set, value, lower is better).
HEADLINE = {"toxicity": ("toxic_trigger", "toxic", True), "repetition": ("repetition_trigger", "window_ratio", False)}
# Columns of the side-effect table: (heading, set, value).
COLUMNS = [
    ("toxic (toxic triggers)", "toxic_trigger", "toxic"),
    ("toxic ctrl unchanged", "toxic_control", "unchanged"),
    ("window ratio (rep. triggers)", "repetition_trigger", "window_ratio"),
    ("loops (rep. triggers)", "repetition_trigger", "loop"),
    ("rep ctrl unchanged", "repetition_control", "unchanged"),
    ("loops (rep. controls)", "repetition_control", "loop"),
    ("toxic (rep. triggers)", "repetition_trigger", "toxic"),
    ("IOI acc (held-out names)", "ioi", "correct"),
]
CONTROL_OF = {"toxicity": "toxic_control", "repetition": "repetition_control"}


def _values(records: list[dict], k: int, name: str, value: str, split: str) -> list[float]:
    return [VALUE[value](r) for r in records if r["k"] == k and r["set"] == name and r["split"] == split]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def choose_on_validation(
    records: list[dict], ppl_change: dict[int, float], behaviour: str, max_ppl_change: float, min_control: float
) -> int | None:
    """The operating point k > 0 with the best headline on the validation prompts among those whose
    control fidelity (validation prompts of the behaviour's controls) is >= `min_control`, whose
    perplexity change is <= `max_ppl_change` and whose headline is better than the unpruned model's
    (k = 0) on the validation prompts; the smallest such k on ties; None if no k qualifies (a k
    that changes nothing is not an operating point). Test prompts are never read."""
    name, value, lower = HEADLINE[behaviour]
    unpruned = _mean(_values(records, 0, name, value, VALIDATION))
    best = (unpruned if lower else -unpruned, None)
    for k in sorted({r["k"] for r in records} - {0}):
        if ppl_change.get(k, math.inf) > max_ppl_change:
            continue
        if _mean(_values(records, k, CONTROL_OF[behaviour], "unchanged", VALIDATION)) < min_control:
            continue
        score = _mean(_values(records, k, name, value, VALIDATION))
        score = score if lower else -score
        if score < best[0]:
            best = (score, k)
    return best[1]


def test_report(records: list[dict], k: int, n_resamples: int = 1000, seed: int = 0) -> dict:
    """{(set, value): (mean, lo, hi, n, distinct dense replies)} on the test prompts at `k`:
    95 % percentile bootstrap intervals over the test prompts."""
    import numpy as np

    from attrprune.circuits.bootstrap import percentile_interval, resample

    out = {}
    for _, name, value in COLUMNS:
        xs = np.array(_values(records, k, name, value, TEST))
        if not len(xs):
            continue
        _, boots = resample(lambda i, x=xs: x[i].mean(-1), [len(xs)], n_resamples, seed)
        lo, hi = percentile_interval(boots)
        # IOI records have no reply: their effective sample is their count
        dense = [
            r["reply"] for r in records if r["k"] == 0 and r["set"] == name and r["split"] == TEST and "reply" in r
        ]
        out[(name, value)] = (float(xs.mean()), float(lo), float(hi), len(xs), distinct_count(dense) if dense else None)
    return out
