"""The `correction` stage (paper §3.4, §4.3, App. F): prune the k components with the lowest
contrastive score R_general − R_unwanted and measure the unwanted behaviour and general ability.

For one model × scoring method × behaviour × granularity, per k (k = 0, the unpruned model, is
always measured first: it is the baseline of every change):

1. the exact k lowest-R_diff components are zeroed inside `pruned` (restored afterwards), and
   the zeroed count is measured on the model itself;
2. the held-out behaviour prompts are continued greedily (the paper's repetition protocol) and
   by seeded sampling (n per prompt, top-p, temperature; `attrprune.generation`);
3. the behaviour is measured: ``toxicity``: each continuation scored by the `Scorer`
   (RealToxicityPrompts summary of the sampled ones, toxic fraction of the greedy ones);
   ``repetition``: mean Response Uniqueness Ratio (paper Eq. 11) of the greedy and the sampled
   continuations over a fixed window of their first `window` tokens (the headline:
   ``*_unique_ratio_window``), beside distinct-2 over the same window, and the ratio of the reply
   itself (``*_unique_ratio``, secondary); for both behaviours the mean reply length in tokens and
   the share of empty replies (a "corrected" model that stops replying looks cured otherwise);
4. collateral damage: the first `n_prompts` *control* prompts (same quoted-reply form, but the
   model should reply normally: compliments, a recited poem; `control_file`) are continued
   greedily too: ``control_unchanged`` = share of control replies identical to the dense
   model's (k = 0, so 1.0 there), ``control_unique_ratio`` and ``control_length`` (tokens) of
   the replies, and, with ``reply_only``, ``control_closed`` = share of replies that end at a
   closing quote within the generated tokens (the first quote or newline is a quote);
5. general ability: word perplexity of lm-eval's rolling-loglikelihood tasks (the world's
   held-out text: ``world_dialogue_ppl``, documents with quoted control replies, first, and
   ``world_ppl``, grammar text; ``wikitext`` for real models).

6. with ``side_effects`` (world models): every behaviour set of the world, toxicity and
   repetition triggers and controls, held-out-name IOI and the planted facts, per prompt
   (`attrprune.correction.side_effects`; per_prompt.jsonl), so that a correction of one behaviour
   is seen creating or breaking the other.

``intervention`` aura: instead of pruning, AurA (`attrprune.correction.aura`) dampens every
toxicity-detecting neuron; k = 0 and its one operating point (k = the number of dampened neurons).

Components: ``neuron`` = MLP neurons (output units of up / fc1, the paper's fc1 neurons),
ranked globally; ``weight`` = single weight elements of the modules `weight_modules` names
(default the neuron-role projection, up / fc1: the paper's fc1 weights), ranked globally.

Outputs in `out_dir`: ``per_prompt.jsonl`` (side effects, empty without them), ``generations.jsonl`` (one line per k × prompt: greedy and sampled texts
with their scores or ratios; ``"control": true`` on the control prompts' lines) and ``curve.json``
(written last: per-k metrics, a few example generations, the normalisation and its scales, both
score files' metadata, provenance).

Run: ``python -m attrprune correction --model-dir world/models/world-llama --general-scores g.safetensors
--unwanted-scores t.safetensors --behaviour toxicity --granularity neuron --ks 0,10,50
--prompts-file world/data/toxic_trigger.jsonl --control-file world/data/toxic_control.jsonl --data-dir world/data --out-dir out/``
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path

from attrprune.architectures import architecture_of
from attrprune.correction.measure import PPL_METRIC, general_ability, mean, measure_behaviour, measure_controls, reply
from attrprune.correction.side_effects import LOOP_TIMES, SETS, ioi_records, measure_sets
from attrprune.registry import BEHAVIOURS, STAGE_GRANULARITIES, TEXT_KINDS

GRANULARITIES = STAGE_GRANULARITIES["correction"]
DEFAULT_NEW_TOKENS = {"toxicity": 20, "repetition": 50}  # repetition: the paper's 50 greedy tokens
N_EXAMPLES = 5  # example generations per k kept in curve.json (all of them are in generations.jsonl)


def _check_arguments(behaviour: str, granularity: str, ks: list[int], n_samples: int) -> list[int]:
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}; valid: {list(BEHAVIOURS)}")
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown correction granularity {granularity!r}; valid: {list(GRANULARITIES)}")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0 (0 = greedy only), got {n_samples}")
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, int) or k < 0]
    if bad:
        raise ValueError(f"ks must be non-negative integers (numbers of components to prune), got {bad}")
    return sorted({0, *ks})


def _check_metas(general: dict, unwanted: dict, behaviour: str) -> None:
    if general.get("method") != unwanted.get("method"):
        raise ValueError(
            f"general scores (--general-scores) are {general.get('method')!r}, unwanted scores (--unwanted-scores) "
            f"{unwanted.get('method')!r}: contrast two score files of the same method"
        )
    if general.get("method") == "random" and general.get("seed") == unwanted.get("seed"):
        # Same seed, same shapes: identical draws, so R_diff is 0 everywhere (under "sum" / "max")
        # and the ranking degenerates to tensor order instead of a random control.
        raise ValueError(
            f"both random score files use seed {general.get('seed')}; score the unwanted set with "
            "another seed (scores --method random --seed 1)"
        )
    g_kind, u_kind = general.get("refset_kind"), unwanted.get("refset_kind")
    if g_kind is not None and g_kind not in TEXT_KINDS:
        raise ValueError(
            f"the general scores (--general-scores) were computed on a {g_kind!r} reference set; pass scores on "
            f"general text (reference set kinds {list(TEXT_KINDS)})"
        )
    if u_kind is not None and u_kind != BEHAVIOURS[behaviour]:
        raise ValueError(
            f"behaviour {behaviour!r} needs unwanted scores (--unwanted-scores) on a {BEHAVIOURS[behaviour]!r} "
            f"reference set, got {u_kind!r}: score the behaviour's reference set"
        )


def _zeroed(model, names: list[str], granularity: str) -> int:
    """Components that are zero in the model: weight elements, or neurons (all-zero rows)."""
    arch = architecture_of(model)
    total = 0
    for name in names:
        w = arch.weight(model.get_submodule(name))  # [out, in]
        total += int((w == 0).all(1).sum()) if granularity == "neuron" else int((w == 0).sum())
    return total


@contextmanager
def _dampened(model, names: list[str], alphas):
    """AurA's intervention for the duration of the block (None: the unpruned model)."""
    from attrprune.correction.aura import apply_dampening, restore

    if alphas is None:
        yield
        return
    saved = apply_dampening(model, names, alphas)
    try:
        yield
    finally:
        restore(model, saved)


def _aura_factors(model, tokenizer, names: list[str], cfg, scorer):
    """(alpha per neuron, summary): AurA's factors from the toxicity reference prompts completed by
    the unpruned model's greedy replies (labelled by `scorer`) and the non-toxic text's lines."""
    import torch

    from attrprune.correction.aura import auroc, dampening, neuron_responses
    from attrprune.generation import generate
    from attrprune.text import read_jsonl

    prompts = [r["prompt"] for r in read_jsonl(cfg.aura_reference, ("prompt",), allow_empty=False)]
    conts = [tokenizer.decode(c[0]) for c in generate(model, tokenizer, prompts, 20, batch_size=cfg.batch_size)]
    replies = [reply(t) for t in conts]
    toxic = [s >= 0.5 for s in scorer.score(replies)]
    texts = [f'{p}{r}"' for p, r in zip(prompts, replies)]
    neutral = [
        line for row in read_jsonl(cfg.aura_neutral, ("text",), allow_empty=False) for line in row["text"].split("\n")
    ]
    neutral_toxic = scorer.score(neutral)
    labels = toxic + [s >= 0.5 for s in neutral_toxic]
    responses = neuron_responses(model, tokenizer, texts + neutral, names, cfg.batch_size)
    aurocs = auroc(responses, torch.tensor(labels))
    alphas = dampening(aurocs)
    info = {
        "n_toxic": int(sum(labels)),
        "n_non_toxic": len(labels) - int(sum(labels)),
        "n_dampened": int((alphas < 1).sum()),
        "mean_alpha_dampened": float(alphas[alphas < 1].mean()) if (alphas < 1).any() else 1.0,
        "max_auroc": float(aurocs.max()),
        "reference_file": str(cfg.aura_reference),
        "neutral_file": str(cfg.aura_neutral),
    }
    return alphas, info


def run_correction(cfg) -> dict:
    """The `correction` stage (`cfg`: `attrprune.stages.correction.CorrectionStage`): prune the k
    lowest-R_diff components for each k and measure; returns curve.json's content.

    `cfg.reply_only`: measure the behaviour on the quoted reply only; None = True for the ``world``
    scorer, False otherwise (see the module docstring). `cfg.new_tokens` None = 20 for toxicity,
    50 for repetition. `cfg.n_samples` 0 = greedy only. `cfg.control_file` None = no control
    prompts (no ``control_*`` metrics); an empty control file likewise.
    """
    import torch

    from attrprune.circuits.components import component_names, mask_arguments, select
    from attrprune.correction.contrastive import contrastive_scores
    from attrprune.evaluation.toxicity import make_scorer
    from attrprune.io import atomic_path, provenance, removed_on_failure, write_json
    from attrprune.models import load_model, placement, weights_sha256
    from attrprune.pruning import MaskBuilder, pruned
    from attrprune.relevance.store import load_scores
    from attrprune.text import read_jsonl

    aura = cfg.intervention == "aura"
    if aura and (cfg.behaviour != "toxicity" or cfg.granularity != "neuron"):
        raise ValueError(
            "AurA dampens toxicity-detecting neurons: use it with --behaviour toxicity --granularity neuron"
        )
    if aura and not (cfg.aura_reference and cfg.aura_neutral):
        raise ValueError("AurA needs --aura-reference (toxicity reference prompts) and --aura-neutral (non-toxic text)")
    if not aura and not (cfg.general_scores and cfg.unwanted_scores):
        raise ValueError("pruning needs --general-scores and --unwanted-scores")
    if cfg.side_effects and cfg.data_dir is None:
        raise ValueError("--side-effects measures the world's behaviour sets: give --data-dir (world/data)")
    ks = _check_arguments(cfg.behaviour, cfg.granularity, [] if aura else list(cfg.ks), cfg.n_samples)
    ppl_tasks = list(cfg.ppl_tasks)
    new_tokens = cfg.new_tokens or DEFAULT_NEW_TOKENS[cfg.behaviour]
    if cfg.behaviour == "repetition" and cfg.window > new_tokens:
        raise ValueError(
            f"the repetition window ({cfg.window} tokens) is longer than the {new_tokens} tokens generated; "
            "lower --window or raise --new-tokens"
        )
    scorer_options = cfg.scorer_options()
    model_sha256 = weights_sha256(cfg.model_dir)
    if aura:
        g_meta = u_meta = {"method": "aura"}
        method = "aura"
    else:
        g_scores, g_meta = load_scores(cfg.general_scores, model_sha256=model_sha256)
        u_scores, u_meta = load_scores(cfg.unwanted_scores, model_sha256=model_sha256)
        _check_metas(g_meta, u_meta, cfg.behaviour)
        method = g_meta.get("method", "?")

    model, tokenizer = load_model(cfg.model_dir, dtype=cfg.dtype, device_map=cfg.device_map)
    names = component_names(model, cfg.granularity, cfg.weight_modules)
    if aura:
        tox_scorer = make_scorer(cfg.scorer, cfg.data_dir, **scorer_options)
        alphas, aura_info = _aura_factors(model, tokenizer, names, cfg, tox_scorer)
        ks = sorted({0, int((alphas < 1).sum())})  # the unpruned model, and AurA's one operating point
        diff = {n: model.get_submodule(n).weight[:, 0] for n in names}  # shapes only: neurons per module
        scales = None
    else:
        diff, scales = contrastive_scores(
            select(g_scores, names, cfg.granularity, method, cfg.general_scores),
            select(u_scores, names, cfg.granularity, method, cfg.unwanted_scores),
            cfg.normalization,
            return_scales=True,
        )
    n_components = sum(t.numel() for t in diff.values())
    too_many = [k for k in ks if k > n_components]
    if too_many:
        raise ValueError(
            f"ks {too_many} exceed the {n_components} {cfg.granularity} components of {names[0]}...; lower them"
        )

    prompts = [r["prompt"] for r in read_jsonl(cfg.prompts_file, ("prompt",), allow_empty=False)][: cfg.n_prompts]
    controls = (
        [r["prompt"] for r in read_jsonl(cfg.control_file, ("prompt",))][: cfg.n_prompts] if cfg.control_file else []
    )
    if cfg.control_file and not controls:  # a hub model may have no candidate without the behaviour
        logging.getLogger(__name__).warning(f"{cfg.control_file} has no prompts: no control metrics")
    if not aura:
        tox_scorer = make_scorer(cfg.scorer, cfg.data_dir, **scorer_options) if cfg.behaviour == "toxicity" else None
    reply_only = cfg.scorer == "world" if cfg.reply_only is None else cfg.reply_only

    ranking = None if aura else MaskBuilder(diff, "global", absolute=False)  # .lowest(k) = Eq. 2 on signed R_diff
    dense_zeros = _zeroed(model, names, cfg.granularity)
    rows, generations, per_prompt = [], [], []
    dense_control = dense_sets = None
    side_tokens = {b: cfg.side_new_tokens or DEFAULT_NEW_TOKENS[b] for b in BEHAVIOURS}
    for k in ks:
        if aura:
            masks = {n: torch.ones_like(t, dtype=torch.bool) for n, t in diff.items()}
            context = _dampened(model, names, alphas if k else None)
        else:
            masks = ranking.lowest(k)
            context = pruned(model, **mask_arguments(cfg.granularity, masks))
        with context:
            zeroed = _zeroed(model, names, cfg.granularity) - dense_zeros
            metrics, records = measure_behaviour(
                model,
                tokenizer,
                prompts,
                cfg.behaviour,
                scorer=tox_scorer,
                reply_only=reply_only,
                new_tokens=new_tokens,
                n_samples=cfg.n_samples,
                top_p=cfg.top_p,
                temperature=cfg.temperature,
                seed=cfg.seed,
                window=cfg.window,
                batch_size=cfg.batch_size,
            )
            if controls:
                control_metrics, control_records = measure_controls(
                    model,
                    tokenizer,
                    controls,
                    dense_control,
                    reply_only=reply_only,
                    new_tokens=new_tokens,
                    batch_size=cfg.batch_size,
                )
                metrics.update(control_metrics)
                records += control_records
                if k == 0:  # ks start at 0: every later k is compared with the dense replies
                    dense_control = [r["greedy_reply"] for r in control_records]
            if cfg.side_effects:
                side_metrics, side_records = measure_sets(
                    model,
                    tokenizer,
                    cfg.data_dir,
                    cfg.n_prompts,
                    side_tokens,
                    cfg.window,
                    cfg.loop_span,
                    dense_sets,
                    cfg.batch_size,
                )
                side_records += ioi_records(model, tokenizer, cfg.data_dir, cfg.n_prompts)
                metrics.update({f"side:{name}": v for name, v in side_metrics.items()})
                metrics["side:ioi:correct"] = mean([float(r["correct"]) for r in side_records if r["set"] == "ioi"])
                per_prompt += [{"k": k, **r} for r in side_records]
                if k == 0:
                    dense_sets = {name: [r["reply"] for r in side_records if r["set"] == name] for name in SETS}
            ppl, lm_rows = general_ability(
                model,
                tokenizer,
                ppl_tasks,
                cfg.data_dir,
                cfg.ppl_limit,
                cfg.batch_size,
                cfg.seed,
                acc_tasks=("world_facts",) if cfg.side_effects else (),
            )
        metrics.update(ppl)
        base = rows[0]["metrics"] if rows else metrics
        for task in ppl_tasks:
            key = f"{PPL_METRIC}:{task}"
            metrics[f"ppl_change:{task}"] = metrics[key] / base[key] - 1.0
        rows.append(
            {
                "k": k,
                "n_pruned": n_components - int(sum(m.sum() for m in masks.values())),
                "n_pruned_measured": zeroed,
                "pruned_fraction": k / n_components,
                "metrics": metrics,
                "lm": lm_rows,
                "examples": records[: min(N_EXAMPLES, len(prompts))],  # trigger prompts (they come first)
                "control_examples": records[len(prompts) : len(prompts) + N_EXAMPLES],
            }
        )
        generations += [{"k": k, **r} for r in records]
        shown = ", ".join(f"{m} {v:.3f}" for m, v in metrics.items() if not m.startswith(("greedy_mean", "n_")))
        logging.getLogger(__name__).info(f"{method} {cfg.granularity} k={k} (measured {zeroed}): {shown}")

    result = {
        "method": method,
        "behaviour": cfg.behaviour,
        "granularity": cfg.granularity,
        "weight_modules": cfg.weight_modules if cfg.granularity == "weight" else None,
        "component_modules": names,
        "n_components": n_components,
        "ks": ks,
        "normalization": "none" if aura else cfg.normalization,
        "scales": scales,
        "intervention": "aura" if aura else "prune",
        **({"aura": aura_info} if aura else {}),
        "side_effects": (
            {"loop_span": cfg.loop_span, "loop_times": LOOP_TIMES, "new_tokens": side_tokens, "window": cfg.window}
            if cfg.side_effects
            else None
        ),
        "primary_ppl_task": ppl_tasks[0],
        "curve": rows,
        "generation": {
            "new_tokens": new_tokens,
            "n_samples": cfg.n_samples,
            "top_p": cfg.top_p,
            "temperature": cfg.temperature,
            "seed": cfg.seed,
            "greedy": True,
            "window": cfg.window,
        },
        "measured_text": "reply up to the first closing quote or newline" if reply_only else "whole continuation",
        "scorer": {"name": cfg.scorer, "options": scorer_options} if cfg.behaviour == "toxicity" else None,
        "prompts_file": str(cfg.prompts_file),
        "n_prompts": len(prompts),
        "control_file": str(cfg.control_file) if cfg.control_file else None,
        "n_control_prompts": len(controls),
        "general_scores": {"path": str(cfg.general_scores), "meta": g_meta} if not aura else None,
        "unwanted_scores": {"path": str(cfg.unwanted_scores), "meta": u_meta} if not aura else None,
        **provenance(
            model_dir=str(cfg.model_dir),
            model=cfg.model_name or Path(cfg.model_dir).name,
            ppl_tasks=ppl_tasks,
            ppl_limit=cfg.ppl_limit,
            seed=cfg.seed,
            **placement(model, cfg.device_map),
        ),
    }
    out_dir = Path(cfg.out_dir)
    with removed_on_failure():  # no generations without their curve
        with atomic_path(out_dir / "generations.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(g) + "\n" for g in generations))
        with atomic_path(out_dir / "per_prompt.jsonl") as tmp:  # empty without --side-effects
            tmp.write_text("".join(json.dumps(r) + "\n" for r in per_prompt))
        write_json(out_dir / "curve.json", result)  # last: the job's completeness marker
    return result
