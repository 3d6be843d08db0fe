"""LRP through lxt's efficient mode (LRP as a modified gradient), with reversible patching.

The patch maps of a family are named by its entry in `attrprune.architectures` (lxt's map where
lxt ships one, ours in `attrprune.relevance.lrp_maps` otherwise) and imported here, the only
place of the package that imports lxt. lxt patches classes and module globals process-wide and
irreversibly; `lrp_patched` records what it replaces and puts everything back on exit, so a
process (or a test session) can compute plain gradients after LRP.

`lrp_patched` also checks that the patch reached the model: a map whose classes the model does
not use would leave plain gradient × input, labelled LRP.

Use::

    with lrp_patched(model, "attnlrp"):
        model(input_ids=ids).logits[..., tok].sum().backward()  # LRP-modified gradients
"""

from __future__ import annotations

import contextlib
import importlib

from lxt.efficient import monkey_patch

VARIANTS = {"attnlrp": "attnLRP", "cp": "cp_LRP"}


def patch_map(model, variant: str = "attnlrp") -> tuple[object, dict]:
    """(transformers modeling module, lxt patch map) of `model`'s family for `variant`."""
    from attrprune.architectures import architecture_of

    if variant not in VARIANTS:
        raise ValueError(f"unknown LRP variant {variant!r}; valid: {sorted(VARIANTS)}")
    arch = architecture_of(model)
    maps = importlib.import_module(arch.lrp_maps)
    return importlib.import_module(arch.modeling_module), getattr(maps, VARIANTS[variant])


def _patched_method(patch) -> str:
    keywords = getattr(patch, "keywords", None) or {}
    return keywords.get("method_name", "forward")


def _snapshot(patches: dict) -> list[tuple[object, str, object]]:
    saved = []
    for target, patch in patches.items():
        if isinstance(target, type):
            name = _patched_method(patch)  # Gemma3's RMSNorm is patched through `_norm`
            saved.append((target, name, target.__dict__.get(name)))
        else:  # a transformers modeling module: its attention functions
            saved.append((target, "eager_attention_forward", target.eager_attention_forward))
            saved.append((target, "ALL_ATTENTION_FUNCTIONS", target.ALL_ATTENTION_FUNCTIONS))
            saved.append((target.ALL_ATTENTION_FUNCTIONS, "__items__", dict(target.ALL_ATTENTION_FUNCTIONS.items())))
    return saved


def _restore(saved) -> None:
    for obj, attr, value in reversed(saved):
        if attr == "__items__":  # CP-LRP edits the shared attention registry in place
            for key, fn in value.items():
                obj[key] = fn
        elif value is None:
            delattr(obj, attr)
        else:
            setattr(obj, attr, value)


def _check_reaches(model, module, patches: dict) -> None:
    """Every class the map patches must be one the model uses, and the map must patch the
    model's own modeling module."""
    used = {type(m) for m in model.modules()}
    missed = [t.__name__ for t in patches if isinstance(t, type) and t not in used and t.__name__ != "Dropout"]
    if module not in patches or missed:
        raise RuntimeError(
            f"the LRP map for {type(model).__name__} does not patch it (classes not in the model: {missed}; "
            f"modeling module patched: {module in patches}); fix the family's lrp_maps in attrprune.architectures"
        )


@contextlib.contextmanager
def lrp_patched(model, variant: str = "attnlrp"):
    """Patch the model's family for LRP (`attnlrp` or `cp`) and undo it on exit."""
    module, patches = patch_map(model, variant)
    _check_reaches(model, module, patches)
    saved = _snapshot(patches)
    try:
        monkey_patch(module, patches)
        yield
    finally:
        _restore(saved)


def block_input_relevance(model, refset, variant: str = "attnlrp") -> tuple[float, float]:
    """(explained target, LRP relevance of the hidden states entering the first block) summed over
    `refset` (one batch). The two are equal when the rules conserve relevance; the block input is
    token + position embeddings (OPT, GPT-2) with Gemma's scaling, i.e. everything the embeddings
    pass on. Measures conservation (tests, bench/conservation.py)."""
    from attrprune.architectures import architecture_of
    from attrprune.models import input_device
    from attrprune.refsets import explained_target

    first = architecture_of(model).block_list(model)[0]
    held = {}

    def make_leaf(module, args, kwargs):
        h = (args[0] if args else kwargs["hidden_states"]).detach().requires_grad_(True)
        held["h"] = h
        return ((h, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": h})

    device = input_device(model)
    ids, mask, plus, minus = (
        t.to(device) for t in (refset.input_ids, refset.attention_mask, refset.plus, refset.minus)
    )
    handle = first.register_forward_pre_hook(make_leaf, with_kwargs=True)
    try:
        with lrp_patched(model, variant):
            target = explained_target(model(input_ids=ids, attention_mask=mask).logits.float(), plus, minus)
            target.backward()
    finally:
        handle.remove()
    h = held["h"]
    return target.item(), (h * h.grad)[mask.bool()].sum().item()
