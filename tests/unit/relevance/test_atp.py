"""Attribution patching (`atp`) and the corrupted IOI prompts it patches in.

* the score is the derivative of the explained target along the patch from the clean to the
  corrupted activation (a central finite difference of the real patched model), per head and per
  neuron, on llama, opt (MLP on flattened tokens) and gpt2 (Conv1D);
* it is exactly 0 when the corrupted prompt is the clean one, and it is not the gradient method;
* the ioi reference set's corrupted prompts follow Wang et al.'s ABC distribution, are seeded,
  and leave the clean prompts (what every other method reads) exactly as they were.
"""

import dataclasses
import hashlib
import random
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tiny_models import tiny_family  # noqa: E402

from attrprune import registry  # noqa: E402
from attrprune.architectures import architecture_of  # noqa: E402
from attrprune.circuits.components import component_names  # noqa: E402
from attrprune.refsets import RefSet, corrupted_prompt, explained_target, ioi_refset, load_refset, save_refset  # noqa: E402
from attrprune.relevance import ScoreOptions, compute_scores  # noqa: E402

SIGNED = ScoreOptions(batch_size=3, aggregation="signed", progress=False)
ABS = dataclasses.replace(SIGNED, aggregation="abs")


def patched_refset(n=5, length=10, vocab=100, seed=0) -> RefSet:
    """Random prompts with an IO-vs-S target at the last real token, the last row right-padded,
    and a corrupted copy that differs at two positions (the "names")."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, length), generator=g)  # [n, L]
    mask = torch.ones_like(ids)
    mask[-1, -3:] = 0
    ids[mask == 0] = 1
    plus, minus = torch.full_like(ids, -1), torch.full_like(ids, -1)
    last = mask.sum(1) - 1
    plus[torch.arange(n), last] = torch.randint(3, vocab, (n,), generator=g)
    minus[torch.arange(n), last] = torch.randint(3, vocab, (n,), generator=g)
    corrupted = ids.clone()
    corrupted[:, [1, 4]] = torch.randint(3, vocab, (n, 2), generator=g)
    return RefSet(ids, mask, plus, minus, corrupted_ids=corrupted)


def readers(model):
    """{module whose input atp patches: (score table, score key, width of one unit)}."""
    arch = architecture_of(model)
    head_dim = arch.weight(model.get_submodule(arch.names_with_roles(model, (arch.head_out,))[0])).shape[1]
    out = {
        name: ("heads", name.rsplit(".", 1)[0], head_dim // arch.n_heads(model))
        for name in arch.names_with_roles(model, (arch.head_out,))
    }
    neuron_keys = arch.names_with_roles(model, (arch.neuron_role,))
    out |= {name: ("neurons", key, 1) for name, key in zip(arch.names_with_roles(model, (arch.mlp_out,)), neuron_keys)}
    return out


def patched_target(model, refset, reader, unit, width, alpha, corrupted_input):
    """The explained target (summed over prompts) with unit `unit` of `reader`'s input moved by
    alpha of the way from its clean to its corrupted value, at every position."""
    cols = slice(unit * width, (unit + 1) * width)

    def pre_hook(module, args):
        x = args[0].clone()
        x[..., cols] += alpha * (corrupted_input[..., cols] - x[..., cols])
        return (x,)

    handle = model.get_submodule(reader).register_forward_pre_hook(pre_hook)
    try:
        with torch.no_grad():
            logits = model(input_ids=refset.input_ids, attention_mask=refset.attention_mask).logits
    finally:
        handle.remove()
    return explained_target(logits, refset.plus, refset.minus).item()


# Finite-difference steps: Llama's rotary tables stay float32 in a float64 model (smaller steps
# drown in rounding); OPT's ReLU has kinks that larger steps cross.
STEP = {"llama": 1e-2, "opt": 1e-4, "gpt2": 1e-4}


@pytest.mark.parametrize("family", ["llama", "opt", "gpt2"])
def test_atp_is_the_first_order_effect_of_patching_in_the_corrupted_activation(family):
    model = tiny_family(family).double()
    refset = patched_refset()
    scores = compute_scores("atp", model, refset, SIGNED)
    alpha, n = STEP[family], len(refset)
    for reader, (table, key, width) in readers(model).items():
        captured = []
        handle = model.get_submodule(reader).register_forward_hook(lambda m, i, o, c=captured: c.append(i[0]))
        with torch.no_grad():
            model(input_ids=refset.corrupted_ids, attention_mask=refset.attention_mask)
        handle.remove()
        score = getattr(scores, table)[key]
        for unit in (0, 2, len(score) - 1):
            up = patched_target(model, refset, reader, unit, width, alpha, captured[0])
            down = patched_target(model, refset, reader, unit, width, -alpha, captured[0])
            finite_difference = (up - down) / (2 * alpha * n)  # d target / d alpha, mean over prompts
            assert score[unit].item() == pytest.approx(finite_difference, rel=1e-3, abs=1e-6), (reader, unit)
        assert score.abs().max() > 1e-4  # the check above is not 0 == 0


def test_atp_abs_is_the_mean_of_per_prompt_magnitudes_and_keys_match_the_circuit_components():
    model = tiny_family("llama")
    refset = patched_refset()
    scores = compute_scores("atp", model, refset, ABS)
    assert set(scores.heads) == set(component_names(model, "head"))
    assert set(scores.neurons) == set(component_names(model, "neuron"))
    assert not scores.weights  # no weight scores, like activation
    per_prompt = [
        compute_scores(
            "atp",
            model,
            RefSet(
                *(t[i : i + 1] for t in (refset.input_ids, refset.attention_mask, refset.plus, refset.minus)),
                corrupted_ids=refset.corrupted_ids[i : i + 1],
            ),
            SIGNED,
        )
        for i in range(len(refset))
    ]
    for key, value in scores.heads.items():
        expected = torch.stack([s.heads[key] for s in per_prompt]).abs().mean(0)
        torch.testing.assert_close(value, expected, rtol=1e-4, atol=1e-7)
    signed = compute_scores("atp", model, refset, SIGNED)
    assert any((signed.heads[k] < 0).any() for k in signed.heads)  # the signed mean keeps the sign


def test_atp_is_zero_when_nothing_changes_and_differs_from_gradient():
    model = tiny_family("gpt2")
    refset = patched_refset()
    same = dataclasses.replace(refset, corrupted_ids=refset.input_ids.clone())
    for scores in (compute_scores("atp", model, same, ABS), compute_scores("atp", model, same, SIGNED)):
        assert all(bool((t == 0).all()) for t in scores.tensors().values())
    atp, grad = compute_scores("atp", model, refset, ABS), compute_scores("gradient", model, refset, ABS)
    for table in ("heads", "neurons"):
        a, g = getattr(atp, table), getattr(grad, table)
        assert max(((a[k] - g[k]).abs().max() / g[k].abs().max()).item() for k in a) > 0.1, table


def test_atp_needs_corrupted_prompts_and_scores_circuits_only():
    refset = dataclasses.replace(patched_refset(), corrupted_ids=None)
    with pytest.raises(ValueError, match="atp needs corrupted prompts"):
        compute_scores("atp", tiny_family("llama"), refset, ABS)
    with pytest.raises(ValueError, match="unknown aggregation 'mean'"):
        compute_scores("atp", tiny_family("llama"), patched_refset(), dataclasses.replace(ABS, aggregation="mean"))
    assert registry.METHODS["atp"].stages == {"circuits": ("neuron", "head")}
    assert "atp" in registry.methods_for("circuits", "head") and "atp" in registry.methods_for("circuits", "neuron")
    assert "atp" not in registry.methods_for("circuits", "weight")
    assert "atp" not in registry.methods_for("compression") + registry.methods_for("correction")


def test_corrupted_prompt_is_abc():
    names = ("Xe", "Yo", "Zu")
    assert corrupted_prompt("Then, Ann and Bob went. Bob gave it to", "Ann", "Bob", names) == (
        "Then, Xe and Yo went. Zu gave it to"
    )
    # BABA order, a name at the very start, and a longer name that contains the IO.
    assert corrupted_prompt("Bob and Ann met Anna. Bob gave it to", "Ann", "Bob", names) == (
        "Yo and Xe met Anna. Zu gave it to"
    )


@pytest.fixture(scope="module")
def world_ioi(repo_root):
    from transformers import AutoTokenizer

    from attrprune.text import read_jsonl

    tok = AutoTokenizer.from_pretrained(repo_root / "world" / "models" / "world-llama", local_files_only=True)
    return tok, read_jsonl(repo_root / "world" / "data" / "ioi_ref.jsonl")


def test_ioi_refset_corrupts_every_name_and_nothing_else(world_ioi):
    tok, rows = world_ioi
    rs = ioi_refset(tok, rows, n=32, seed=0)
    assert rs.corrupted_ids.shape == rs.input_ids.shape
    changed = rs.corrupted_ids != rs.input_ids
    assert not changed[rs.attention_mask == 0].any()  # padded alike: one attention mask for both
    assert bool((changed.sum(1) == 3).all())  # IO, S and the repeated S; every other token kept
    chosen = random.Random(0).sample(rows, 32)
    for i, r in enumerate(chosen):
        text = tok.decode(rs.corrupted_ids[i][rs.attention_mask[i].bool()])
        words = set(text.replace(".", " ").replace(",", " ").split())
        assert r["io"] not in words and r["s"] not in words, text
        new = [tok.decode(rs.corrupted_ids[i, j]).strip() for j in changed[i].nonzero().flatten()]
        assert len(set(new)) == 3, text  # three different names: no name repeats (ABC)


def test_ioi_refset_clean_part_is_unchanged_and_corruption_is_seeded(world_ioi, tmp_path):
    from attrprune.text import pad_rows, single_token_id
    from attrprune.tokens import encode_prompts

    tok, rows = world_ioi
    rs = ioi_refset(tok, rows, n=16, seed=3)
    # The set as it was built before it had corrupted prompts: what every other method reads.
    chosen = random.Random(3).sample(rows, 16)
    encs = encode_prompts(tok, [r["prompt"] for r in chosen])
    ids, mask = pad_rows(encs, tok.eos_token_id)
    assert torch.equal(rs.input_ids, ids) and torch.equal(rs.attention_mask, mask)
    last = mask.sum(1) - 1
    assert rs.plus[torch.arange(16), last].tolist() == [single_token_id(tok, r["io"]) for r in chosen]
    old_hash = hashlib.sha256()
    for t in (rs.input_ids, rs.attention_mask, rs.plus, rs.minus):
        old_hash.update(t.contiguous().numpy().tobytes())
    assert dataclasses.replace(rs, corrupted_ids=None).content_hash() == old_hash.hexdigest()
    assert rs.content_hash() != old_hash.hexdigest()  # the corrupted prompts are part of the set
    assert torch.equal(ioi_refset(tok, rows, n=16, seed=3).corrupted_ids, rs.corrupted_ids)

    def corruption(seed):  # the same 16 prompts, in the seed's order: {clean: corrupted}
        s = ioi_refset(tok, rows[:16], n=16, seed=seed)
        return {tuple(a.tolist()): tuple(b.tolist()) for a, b in zip(s.input_ids, s.corrupted_ids)}

    assert corruption(5).keys() == corruption(6).keys() and corruption(5) != corruption(6)
    save_refset(rs, tmp_path / "ioi.safetensors")
    back = load_refset(tmp_path / "ioi.safetensors")
    assert torch.equal(back.corrupted_ids, rs.corrupted_ids) and back.meta["sha256"] == rs.content_hash()


def test_ioi_refset_with_too_few_names_has_no_corrupted_prompts(world_ioi):
    tok, rows = world_ioi
    pair = [r for r in rows if {r["io"], r["s"]} == {rows[0]["io"], rows[0]["s"]}]
    assert ioi_refset(tok, pair, n=1, seed=0).corrupted_ids is None
