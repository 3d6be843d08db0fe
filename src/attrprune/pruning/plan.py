"""How a compression method (`attrprune.registry.compression_methods`) prunes a model at one
sparsity, the same way for the compress and the export stage:

* by scores (lrp, gradient, wanda_onepass, magnitude, random): masks ranked within the scope,
  sorted once for every sparsity; with an ``_owl`` scope each decoder block is pruned at its OWL
  sparsity (outlier ratios of the dense model on the calibration set, computed once);
* by a calibrated pruner (wanda, ria, sparsegpt): block by block on the calibration set through
  the already pruned blocks (`attrprune.pruning.pruners`), SparseGPT also rewriting kept weights.

Use::

    plan = CompressionPlan(model, "sparsegpt", "layer", calibration=refset)
    with plan.pruned(0.5) as record:  # pruned inside, the dense weights back afterwards
        evaluate(model)
    record["measured"]["overall"], record["options"], record["block_sparsity"]
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from attrprune import registry
from attrprune.pruning.apply import model_sparsity, pruned
from attrprune.pruning.masks import MaskBuilder, measured_sparsity
from attrprune.pruning.owl import OWL_LAMBDA, OWL_M, check_owl, dense_wanda_ratios, masks_by_block, owl_allocation
from attrprune.pruning.pruners import check_options, prune, weights_restored
from attrprune.refsets import RefSet


def check_pruner_options(method: str, scope: str, given: dict) -> None:
    """One line when `given` ({`registry.PRUNER_OPTIONS` key: value}) names an unknown key, one
    that `method` with `scope` does not read, or a value out of its range."""
    unknown = sorted(set(given) - set(registry.PRUNER_OPTIONS))
    if unknown:
        raise ValueError(f"unknown pruner options {unknown}; valid: {', '.join(registry.PRUNER_OPTIONS)}")
    unused = sorted(set(given) - set(registry.pruner_options_for(method, scope)))
    if unused:
        raise ValueError(f"{method} with scope {scope!r} reads no {', '.join(unused)}; drop it")
    _options(method, scope, given)


def _options(method: str, scope: str, given: dict):
    """The options `method` runs with: the pruner's options dataclass (the authors' defaults and
    `given`), or for scores with an _owl scope {"owl_m", "owl_lambda"}; checked."""
    fields = {registry.PRUNER_OPTIONS[key][0]: value for key, value in given.items()}
    _, allocation = registry.split_allocation(scope)
    if registry.compression_methods()[method] is None:
        _, options_type = registry.pruner_function(method)
        options = options_type(allocation=allocation, **fields)
        check_options(method, options)
        return options
    if allocation != "owl":
        return {}
    options = {"owl_m": fields.get("owl_m", OWL_M), "owl_lambda": fields.get("owl_lambda", OWL_LAMBDA)}
    check_owl(options["owl_m"], options["owl_lambda"])
    return options


class CompressionPlan:
    """Compression method `method` with `scope` on `model`; `scores` (a `Scores`) for score
    methods, `calibration` for calibrated pruners and for OWL allocation, `pruner_options`
    ({`registry.PRUNER_OPTIONS` key: value}) for what differs from the authors' defaults. Masks
    count as the method's authors do (`registry.count_rule`). Checks everything at construction,
    so that a wrong combination fails before any evaluation."""

    def __init__(
        self,
        model,
        method: str,
        scope: str,
        scores=None,
        calibration: RefSet | None = None,
        pruner_options: dict | None = None,
    ):
        registry.check_compression(method, scope)
        check_pruner_options(method, scope, pruner_options or {})
        self.model, self.method, self.scope = model, method, scope
        self.scores_method = registry.compression_methods()[method]
        self.base_scope, self.allocation = registry.split_allocation(scope)
        ranked = self.base_scope in registry.RANKED_SCOPES  # N:M prunes exactly N of M
        self.count = registry.count_rule(method, self.base_scope) if ranked else "floor"
        self.calibration = calibration
        needs_calibration = self.scores_method is None or self.allocation == "owl"
        if needs_calibration and (calibration is None or len(calibration) == 0):
            why = "runs on" if self.scores_method is None else "allocates OWL sparsities from"
            raise ValueError(f"{method} with scope {scope!r} {why} a calibration set: give one (--calibration)")
        if self.scores_method is None:
            if scores is not None:
                raise ValueError(f"{method} is a calibrated pruner and reads no scores; drop --scores")
            self.options = _options(method, scope, pruner_options or {})
            return
        if scores is None:
            raise ValueError(f"{method} prunes by {self.scores_method} scores: give them (--scores)")
        if not scores.weights:
            raise ValueError(
                f"the {self.scores_method} scores hold no weight scores (structured only); compression prunes "
                f"weights: use one of {', '.join(registry.compression_methods())}"
            )
        self.weights = scores.weights
        self.options = _options(method, scope, pruner_options or {})
        if self.allocation == "owl":
            self.ratios = dense_wanda_ratios(model, calibration, self.options["owl_m"])  # the dense model's, once
        else:
            self.builder = MaskBuilder(self.weights, self.base_scope, count=self.count)  # sorted once

    def _record(self, sparsity: float, **extra) -> dict:
        calibration = None
        if self.calibration is not None and (self.scores_method is None or self.allocation == "owl"):
            meta = self.calibration.meta
            calibration = {k: meta.get(k) for k in ("kind", "seed", "n", "sha256")}
            calibration["n_tokens"] = int(self.calibration.attention_mask.sum())
        options = self.options if isinstance(self.options, dict) else dataclasses.asdict(self.options)
        return {
            "method": self.method,
            "scores_method": self.scores_method,
            "sparsity": sparsity,
            "scope": self.scope,
            "allocation": self.allocation,
            "count": self.count,
            "options": options,
            "calibration": calibration,
            **extra,
        }

    @contextlib.contextmanager
    def pruned(self, sparsity: float) -> Iterator[dict]:
        """The model pruned at `sparsity` inside; yields the record (method, scope, options, block
        sparsities, calibration, the measured zeros, and for score methods the masks' own share)."""
        if self.scores_method is None:
            with weights_restored(self.model):
                stats = prune(self.method, self.model, self.calibration, sparsity, self.base_scope, self.options)
                measured = model_sparsity(self.model)
                yield self._record(
                    sparsity, block_sparsity=stats["block_sparsity"], measured=measured, seconds=stats["seconds"]
                )
            return
        blocks = None
        if self.allocation == "owl":
            blocks = owl_allocation(self.ratios, sparsity, self.options["owl_lambda"])
            masks = masks_by_block(self.model, self.weights, blocks, self.base_scope, self.count)
        else:
            masks = self.builder.masks(sparsity)
        with pruned(self.model, weight_masks=masks):
            measured = model_sparsity(self.model, list(masks))
            yield self._record(
                sparsity,
                block_sparsity=blocks,
                measured=measured,
                sparsity_requested_masks=measured_sparsity(masks)["overall"],
            )
