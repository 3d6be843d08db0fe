"""Structured pruning into a smaller dense model: removing units equals zeroing them, key/value
groups stay whole, FLAP's metric and compensation equal a hand computation, every ranking is the
one its definition gives, and the exported model reloads with plain transformers."""

import json

import pytest
import torch
import yaml
from tiny_models import FAMILIES, calibration, tiny_family

from attrprune.architectures import architecture_of
from attrprune.pruning import structured as st
from attrprune.pruning import unit_scores as us
from attrprune.relevance.methods import ScoreOptions, compute_scores

IDS = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(1))


def _params(model):
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_removing_units_equals_zeroing_them(family):
    model = tiny_family(family)
    arch = architecture_of(model)
    scores = compute_scores("random", model, calibration(), ScoreOptions(progress=False, seed=3))
    plan = st.plan_structured(model, "random", 0.5, scores=scores)
    with torch.no_grad():
        dense = model(IDS).logits
        with st.zeroed(model, plan):
            zeroed = model(IDS).logits
        small = st.shrink(model, plan)
        removed = small(IDS).logits
        assert torch.equal(model(IDS).logits, dense)  # the model itself is left as it was
    assert not torch.allclose(zeroed, dense, atol=1e-3)  # something was removed
    torch.testing.assert_close(removed, zeroed, atol=1e-5, rtol=1e-5)
    width = arch.weight(model.get_submodule(arch.names_with_roles(model, (arch.neuron_role,))[0])).shape[0]
    assert getattr(small.config, arch.mlp_width_key) == width // 2  # half the neurons removed
    assert _params(small) < _params(model)
    if arch.heads_removable:
        n_kv = arch.n_kv_heads(model)
        kept = n_kv - st.n_removed(0.5, n_kv)
        group = arch.n_heads(model) // n_kv
        assert small.config.num_key_value_heads == kept and small.config.num_attention_heads == kept * group
        o = arch.names_with_roles(model, (arch.head_out,))[0]
        assert small.config.head_dim == arch.weight(model.get_submodule(o)).shape[1] // arch.n_heads(model)
    else:
        assert small.config.num_attention_heads == model.config.num_attention_heads
        assert plan.groups is None and "head_dim" in plan.heads_note


def test_gqa_groups_rank_and_go_whole():
    """Query heads [0, 1 | 2, 3] share key/value heads [0 | 1]: a group's score is its heads' sum,
    so group 1 (2 + 3 = 5) goes although head 0 (score 1) is the lowest head."""
    model = tiny_family("llama")  # 4 heads, 2 key/value heads
    arch = architecture_of(model)
    scores = compute_scores("random", model, calibration(), ScoreOptions(progress=False))
    for name in scores.heads:
        scores.heads[name] = torch.tensor([1.0, 10.0, 2.0, 3.0])
    plan = st.plan_structured(model, "random", 0.5, scores=scores)
    assert all(kept.tolist() == [0] for kept in plan.groups.values())
    summary = plan.summary(model)
    assert summary["blocks"][0]["heads_kept"] == [0, 1] and summary["blocks"][0]["heads_removed"] == 2
    small = st.shrink(model, plan)
    attention = small.get_submodule(arch.blocks + ".0.self_attn")
    hd = model.config.head_dim
    assert attention.q_proj.weight.shape[0] == 2 * hd and attention.k_proj.weight.shape[0] == hd
    big = model.get_submodule(arch.blocks + ".0.self_attn")
    torch.testing.assert_close(attention.k_proj.weight, big.k_proj.weight[:hd])  # key head 0 kept, 1 gone
    torch.testing.assert_close(attention.q_proj.weight, big.q_proj.weight[: 2 * hd])
    torch.testing.assert_close(attention.o_proj.weight, big.o_proj.weight[:, : 2 * hd])


def test_ratio_counts_and_refusals():
    assert [st.n_removed(r, 8) for r in (0.25, 0.5, 0.3, 0.7)] == [2, 4, 2, 5]  # never more than r
    assert st.n_removed(0.25, 2) == 0 and st.n_removed(0.9, 2) == 1  # one unit always stays
    with pytest.raises(ValueError, match="outside"):
        st.n_removed(1.0, 8)
    model = tiny_family("mistral")  # no bias on o_proj / down_proj, and no config key adds one
    stats = us.channel_stats(model, calibration())
    plan = st.plan_structured(model, "flap", 0.5, stats=stats)
    assert plan.bias == {} and "no bias on its down and o projection" in plan.compensation_note
    small = st.shrink(model, plan)
    assert small.get_submodule("model.layers.0.mlp.down_proj").bias is None
    plan.bias = st.compensation(model, plan, stats)
    with pytest.raises(ValueError, match="cannot be stored in a standard config"):
        st.shrink(model, plan)
    qwen3 = tiny_family("qwen3")  # attention_bias gives o_proj one; down_proj has none
    plan = st.plan_structured(qwen3, "flap", 0.5, stats=us.channel_stats(qwen3, calibration()))
    assert sorted(plan.bias) == ["model.layers.0.self_attn.o_proj", "model.layers.1.self_attn.o_proj"]
    assert st.shrink(qwen3, plan).config.attention_bias and "down" in plan.compensation_note
    with pytest.raises(ValueError, match="unknown structured method"):
        us.unit_scores(model, "sparsegpt")


def _hand_inputs(model, name, cal):
    """Every real token's input to module `name`, collected by a hook of its own: [tokens, in]."""
    rows = []
    module = model.get_submodule(name)
    mask_now = []
    h = module.register_forward_hook(lambda m, i, o: rows.append(i[0].reshape(-1, i[0].shape[-1])[mask_now[0]]))
    with torch.no_grad():
        for ids, mask, _, _ in cal.batches(3):
            mask_now[:] = [mask.reshape(-1).bool()]
            model(input_ids=ids, attention_mask=mask)
    h.remove()
    return torch.cat(rows).double()


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_flap_metric_and_compensation_by_hand(family):
    model = tiny_family(family)
    arch = architecture_of(model)
    cal = calibration()
    stats = us.channel_stats(model, cal, batch_size=4)
    plan = st.plan_structured(model, "flap", 0.5, stats=stats)
    neurons, groups = us.unit_scores(model, "flap", stats=stats)
    by_role = {v: k for k, v in arch.linear_names(model).items()}
    for role in (arch.mlp_out, arch.head_out):
        name = by_role[(1, role)]
        x = _hand_inputs(model, name, cal)  # [tokens, in]
        assert stats[name].n == int(cal.attention_mask.sum())
        w = arch.weight(model.get_submodule(name)).double()
        mean, var = x.mean(0), x.var(0, unbiased=True)
        fluct = torch.stack([var[j] * sum(w[i, j] ** 2 for i in range(w.shape[0])) for j in range(w.shape[1])])
        if role == arch.mlp_out:
            torch.testing.assert_close(neurons[1].double(), fluct, rtol=1e-5, atol=1e-9)
            gone = [j for j in range(w.shape[1]) if j not in plan.neurons[1].tolist()]
        else:
            if not arch.heads_removable:
                assert name not in plan.bias
                continue
            per_head = fluct.reshape(arch.n_heads(model), -1).sum(-1)
            torch.testing.assert_close(groups[1].double(), per_head.reshape(2, 2).sum(-1), rtol=1e-5, atol=1e-9)
            hd = w.shape[1] // arch.n_heads(model)
            gone = [
                h * hd + d
                for g in range(2)
                if g not in plan.groups[1].tolist()
                for h in (2 * g, 2 * g + 1)
                for d in range(hd)
            ]
        assert len(gone) == w.shape[1] // 2
        expected = sum(w[:, j] * mean[j] for j in gone)  # W_:,removed · mean(X_removed)
        torch.testing.assert_close(plan.bias[name].double(), expected, rtol=1e-5, atol=1e-7)


def test_flap_compensation_keeps_the_mean_output():
    """With one block the output projection's kept inputs are the dense ones, so its output
    averaged over the calibration tokens is unchanged by removal + compensation (not without)."""
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.LlamaConfig(
        vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    model = tf.LlamaForCausalLM(cfg).eval()
    cal = calibration()
    stats = us.channel_stats(model, cal)
    o = "model.layers.0.self_attn.o_proj"

    def mean_output(m):
        out = []
        mask_now = []
        h = m.get_submodule(o).register_forward_hook(lambda mod, i, y: out.append(y.reshape(-1, 64)[mask_now[0]]))
        with torch.no_grad():
            for ids, mask, _, _ in cal.batches(8):
                mask_now[:] = [mask.reshape(-1).bool()]
                m(input_ids=ids, attention_mask=mask)
        h.remove()
        return torch.cat(out).double().mean(0)

    dense = mean_output(model)
    compensated = st.shrink(model, st.plan_structured(model, "flap", 0.5, stats=stats))
    plain = st.shrink(model, st.plan_structured(model, "flap", 0.5, stats=stats, compensate=False))
    assert compensated.config.attention_bias and not plain.config.attention_bias
    torch.testing.assert_close(mean_output(compensated), dense, atol=1e-5, rtol=1e-4)
    assert (mean_output(plain) - dense).abs().max() > 1e-3


def _next_token_set():
    """The padded calibration set, explaining the next token at every real position."""
    cal = calibration()
    cal.plus[:, :-1] = cal.input_ids[:, 1:]
    cal.plus[:, :-1][cal.attention_mask[:, 1:] == 0] = -1
    return cal


def _removed(plan, block):
    return plan.neurons[block], plan.groups[block]


def _lowest(scores, k):
    return sorted(torch.sort(scores, stable=True).indices[:k].tolist())


@pytest.mark.parametrize("method", ["lrp", "gradient", "activation", "random", "wanda", "magnitude"])
def test_each_score_ranks_by_its_definition(method):
    model = tiny_family("llama")  # GQA: 4 heads in 2 groups, 128 neurons
    arch = architecture_of(model)
    by_role = {v: k for k, v in arch.linear_names(model).items()}
    options = ScoreOptions(progress=False)
    scores = None if method == "magnitude" else compute_scores(method, model, _next_token_set(), options)
    plan = st.plan_structured(model, method, 0.25, scores=scores)
    for block in range(2):
        up, down, o = (by_role[(block, r)] for r in ("up", "down", "o"))
        attention = o.rsplit(".", 1)[0]
        if method == "wanda":  # Wanda-sp: the output projection's |W|·‖X‖, mean over its rows
            neuron = scores.weights[down].mean(0)
            group = scores.weights[o].mean(0).reshape(2, -1).sum(-1)
        elif method == "magnitude":  # Σ|w| of the unit's weights
            w = {r: arch.weight(model.get_submodule(by_role[(block, r)])).detach().abs() for r in arch.linears}
            neuron = w["gate"].sum(1) + w["up"].sum(1) + w["down"].sum(0)
            group = w["q"].sum(1).reshape(2, -1).sum(-1) + w["o"].sum(0).reshape(2, -1).sum(-1)
            group = group + w["k"].sum(1).reshape(2, -1).sum(-1) + w["v"].sum(1).reshape(2, -1).sum(-1)
        else:
            neuron, group = scores.neurons[up], scores.heads[attention].reshape(2, 2).sum(-1)
        kept_neurons, kept_groups = _removed(plan, block)
        gone = sorted(set(range(128)) - set(kept_neurons.tolist()))
        assert gone == _lowest(neuron, 32), method
        plan_half = st.plan_structured(model, method, 0.5, scores=scores)  # one of the 2 groups goes
        assert sorted(set(range(2)) - set(plan_half.groups[block].tolist())) == _lowest(group, 1), method
    if method == "wanda":  # not the row sums of the up projection's scores (the neuron table of wanda)
        assert _lowest(scores.neurons[by_role[(0, "up")]], 32) != sorted(
            set(range(128)) - set(plan.neurons[0].tolist())
        )


def test_magnitude_groups_count_key_and_value_heads():
    """0.5 of 2 groups removes one: the one of lower Σ|w| over its q rows, o columns, k and v rows."""
    model = tiny_family("llama")
    arch = architecture_of(model)
    attention = model.get_submodule(arch.blocks + ".0.self_attn")
    with torch.no_grad():
        attention.k_proj.weight[16:] *= 100  # key head 1 (head_dim 16) far heavier: group 1 stays
    plan = st.plan_structured(model, "magnitude", 0.5)
    assert plan.groups[0].tolist() == [1]


def test_export_reloads_with_plain_transformers(repo_root, tmp_path):
    from tiny_models import save_tiny_family
    from transformers import AutoModelForCausalLM

    from attrprune.compression import read_model_card
    from attrprune.deploy import export_structured
    from attrprune.models import load_checkpoint_on_cpu
    from attrprune.refsets import save_refset

    base = save_tiny_family("llama", tmp_path / "base", repo_root / "world/models/world-llama")
    model, _ = load_checkpoint_on_cpu(base)
    model = model.to(torch.bfloat16)
    model.save_pretrained(base)  # a bf16 checkpoint: the export keeps its dtype
    cal = calibration()
    cal_path = tmp_path / "general-s0.safetensors"
    save_refset(cal, cal_path)
    info = export_structured(base, "flap", 0.5, None, cal_path, tmp_path / "small", dtype="float32")
    plain, loading = AutoModelForCausalLM.from_pretrained(tmp_path / "small", output_loading_info=True)
    assert not any(loading.values()), loading  # every weight from the files, every file tensor used
    small = AutoModelForCausalLM.from_pretrained(tmp_path / "small", dtype="auto")
    assert small.dtype == torch.bfloat16 and info["dtype"] == "bfloat16"
    assert json.loads((tmp_path / "small/config.json").read_text())["dtype"] == "bfloat16"
    cfg = json.loads((tmp_path / "small/config.json").read_text())
    assert cfg["intermediate_size"] == 64 and cfg["num_attention_heads"] == 2 and cfg["num_key_value_heads"] == 1
    assert cfg["head_dim"] == 16 and cfg["attention_bias"] and cfg["mlp_bias"]
    # The same logits as the model shrunk in memory from the same plan.
    model, _ = load_checkpoint_on_cpu(base)
    stats = us.channel_stats(model.float(), cal)
    model = model.to(torch.bfloat16)
    expected = st.shrink(model, st.plan_structured(model, "flap", 0.5, stats=stats))
    with torch.no_grad():
        torch.testing.assert_close(small(IDS).logits, expected(IDS).logits)
    meta, text = read_model_card(tmp_path / "small/README.md")
    assert meta["pruning"]["kind"] == "structured" and meta["pruning"]["neurons_per_block"] == "64 of 128"
    assert meta["pruning"]["heads_per_block"] == "2 of 4" and meta["pruning"]["bias_compensation"] is True
    assert "from_pretrained" in text and info["parameters"] == _params(small)
    record = json.loads((tmp_path / "small/structured.json").read_text())
    assert [b["heads_removed"] for b in record["structure"]["blocks"]] == [2, 2]
    yaml.safe_dump(meta)
