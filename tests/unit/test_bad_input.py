"""Bad input against every stage, in-process through the command line's error boundary
(`attrprune.cli.run`): each case ends in exit code 1 (2 for argparse's usage errors) with one
``attrprune <stage>: error: ...`` line, the last on stderr, naming the file or flag and the fix; no
traceback; and no output file (nor temporary file) left behind.

Categories: JSONL inputs, model folders, reference-set and score files, scores of the wrong kind
for a stage, output paths, and bad numbers or choices on the command line. Every case fails before
any generation or lm-eval run (the committed world-llama loads in well under a second). The
cases of tests/unit/test_cli_errors.py are not repeated here.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from attrprune.cli import run

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "world" / "models" / "world-llama"
DATA = ROOT / "world" / "data"
IOI_EVAL = DATA / "ioi_heldout_names.jsonl"
TOXIC = DATA / "toxic_trigger.jsonl"
# rows of world-llama's embedding = its tokenizer's size (big_vocab adds 5 tokens past them)
ROWS = json.loads((MODEL / "config.json").read_text())["vocab_size"]


@pytest.fixture(autouse=True)
def quiet_transformers():
    """transformers' own warnings go through a logging handler that pytest's capture may have
    closed (a "--- Logging error ---" traceback no user sees); they are not under test here."""
    import transformers

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    yield
    transformers.logging.set_verbosity(level)


def _rewrite(src: Path, dst: Path, transform=None, **meta) -> Path:
    """A copy of the scores file `src` with its tensors transformed and its metadata changed
    (a value None drops the key)."""
    from attrprune.store import load_tensors, save_tensors

    tensors, record = load_tensors(src, key="scores")
    if transform is not None:
        tensors = transform(tensors)
    record = {k: v for k, v in {**record, **meta}.items() if v is not None}
    save_tensors(dst, tensors, record, key="scores")
    return dst


def _poisoned(value: float):
    def transform(tensors):
        name = next(k for k in tensors if k.startswith("weight/"))
        t = tensors[name].clone()
        t.view(-1)[0] = value
        return {**tensors, name: t}

    return transform


@pytest.fixture(scope="session")
def made(tmp_path_factory, quiet_session):
    """Inputs shared by the cases, written once: a small general reference set and magnitude /
    activation scores of world-llama on it (their refset kind rewritten where a case needs
    behaviour scores), damaged copies of them and damaged model folders."""
    from safetensors.torch import save_file

    from attrprune.store import load_tensors, save_tensors

    d = tmp_path_factory.mktemp("made")
    general = d / "general.safetensors"
    common = ["--model-dir", str(MODEL), "--dtype", "float32"]
    text = d / "text.jsonl"  # a few documents: tokenizing the world's whole general text takes seconds
    text.write_text("".join(line + "\n" for line in (DATA / "general_ref.jsonl").read_text().splitlines()[:3]))
    argv = ["refset", "--kind", "general", *common[:2], "--source", "json", "--text-file", str(text), "--n", "2"]
    assert run([*argv, "--length", "8", "--out", str(general)]) == 0
    for method in ("magnitude", "activation"):
        argv = [
            "scores",
            "--method",
            method,
            *common,
            "--refset",
            str(general),
            "--out",
            str(d / f"{method}.safetensors"),
        ]
        assert run(argv) == 0
    f = {"general": general, "magnitude": d / "magnitude.safetensors", "activation": d / "activation.safetensors"}
    f["magnitude_toxic"] = _rewrite(f["magnitude"], d / "magnitude_toxic.safetensors", refset_kind="toxic")
    f["activation_toxic"] = _rewrite(f["activation"], d / "activation_toxic.safetensors", refset_kind="toxic")
    f["other_model"] = _rewrite(f["magnitude"], d / "other_model.safetensors", model_sha256="0" * 64)
    f["no_model_sha"] = _rewrite(f["magnitude"], d / "no_model_sha.safetensors", model_sha256=None)
    f["nan"] = _rewrite(f["magnitude"], d / "nan.safetensors", _poisoned(float("nan")))
    f["inf"] = _rewrite(f["magnitude"], d / "inf.safetensors", _poisoned(float("inf")))
    tensors, _ = load_tensors(f["magnitude"], key="scores")
    save_file(tensors, str(d / "no_meta.safetensors"))
    f["no_meta"] = d / "no_meta.safetensors"
    data = f["magnitude"].read_bytes()
    (d / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    f["truncated"] = d / "truncated.safetensors"
    data = general.read_bytes()
    (d / "truncated_refset.safetensors").write_bytes(data[: len(data) - 10])
    f["truncated_refset"] = d / "truncated_refset.safetensors"
    refset, meta = load_tensors(general, key="refset")
    save_tensors(d / "empty_refset.safetensors", {k: t[:0] for k, t in refset.items()}, meta, key="refset")
    f["empty_refset"] = d / "empty_refset.safetensors"
    (d / "text.safetensors").write_text("this is not a safetensors file\n")
    f["text"] = d / "text.safetensors"

    models = d / "models"
    for damage in ("no_config", "bad_config", "truncated", "no_tokenizer"):
        folder = models / damage
        shutil.copytree(MODEL, folder)
        if damage == "no_config":
            (folder / "config.json").unlink()
        elif damage == "bad_config":
            (folder / "config.json").write_text('{"model_type": "llama",\n')
        elif damage == "truncated":
            weights = (folder / "model.safetensors").read_bytes()
            (folder / "model.safetensors").write_bytes(weights[: len(weights) // 3])
        else:
            for name in ("tokenizer.json", "tokenizer_config.json"):
                (folder / name).unlink()
        f[f"model_{damage}"] = folder
    (models / "a_file").write_text("not a model folder\n")
    f["model_file"] = models / "a_file"
    f.update(_mismatched_models(models / "mismatched"))
    f.update(_written_files(d / "written"))
    return f


def _mismatched_models(d: Path) -> dict:
    """Model folders whose files load without an error in transformers (it only warns, or keeps
    quiet) but do not fill the model: every one would compute on random weights or ids."""
    import json

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    def variant(name: str, config: dict | None = None, tensors=None) -> Path:
        folder = d / name
        shutil.copytree(MODEL, folder)
        if config is not None:
            (folder / "config.json").write_text(json.dumps(config))
        if tensors is not None:
            weights = load_file(str(folder / "model.safetensors"))
            save_file(tensors(weights), str(folder / "model.safetensors"), metadata={"format": "pt"})
        return folder

    llama = json.loads((MODEL / "config.json").read_text())
    opt = json.loads((ROOT / "world" / "models" / "world-opt" / "config.json").read_text())
    gone = "model.layers.1.mlp.down_proj.weight"
    f = {
        "model_opt_config": variant("opt_config", config=opt),
        "model_other_class": variant("other_class", config={**llama, "architectures": ["OPTForCausalLM"]}),
        "model_missing_tensor": variant("missing_tensor", tensors=lambda w: {k: v for k, v in w.items() if k != gone}),
        "model_extra_tensor": variant("extra_tensor", tensors=lambda w: {**w, "model.extra.weight": torch.ones(4)}),
        "model_shape": variant(
            "shape", tensors=lambda w: {**w, "model.layers.0.mlp.up_proj.weight": torch.zeros(256, 128)}
        ),
    }
    folder = f["model_big_vocab"] = variant("big_vocab")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens([f"newword{i}" for i in range(5)])  # ids ROWS..ROWS+4: past the embedding
    tokenizer.save_pretrained(folder)
    return f


def _fill_rows(card: dict) -> None:
    """Give `card` a number for every row of the world card's table it lacks (the committed card
    may be older than the table's rows): each row's getter runs on a copy that grows the keys it
    reads, and a value it ends on that was not there becomes 0.5."""
    import json

    from attrprune.world.card import _ROWS

    class Grows(dict):
        def __missing__(self, key):
            self[key] = Grows()
            return self[key]

    def grown(node):
        return Grows({k: grown(v) if isinstance(v, dict) else v for k, v in node.items()})

    def walk(node):
        for key, value in node.items():
            yield node, key
            if isinstance(value, dict):
                yield from walk(value)

    for _, get, *_ in _ROWS:
        probe = grown(card)
        leaf = get(probe)
        if isinstance(leaf, Grows) and not leaf:
            parent, key = next((p, k) for p, k in walk(probe) if p[k] is leaf)
            parent[key] = 0.5
        card.clear()
        card.update(json.loads(json.dumps(probe)))


def _written_files(d: Path) -> dict:
    """Valid files of the kinds the table stages read, each checked by a case that succeeds."""
    import json

    d.mkdir()
    dense = {
        "method": None,
        "model": "world-llama",
        "model_dir": str(MODEL),
        "scope": None,
        "sparsity": 0.0,
        "sparsity_measured": 0.0,
        "metrics": [{"task": "world_ppl", "metric": "word_perplexity", "value": 3.0, "stderr": None}],
    }
    pruned = {
        **dense,
        "method": "magnitude",
        "scope": "row",
        "sparsity": 0.5,
        "sparsity_measured": 0.5,
        "metrics": [{"task": "world_ppl", "metric": "word_perplexity", "value": 5.0, "stderr": None}],
        "pruning": {"calibration": None},
        "scores": {"refset_seed": 0},
    }
    card = json.loads((ROOT / "world" / "card.json").read_text())["world-llama"]
    _fill_rows(card["card"])
    point = {"seed_index": 0, "kept_fraction": 0.5, "accuracy": 1.0, "logit_diff": 1.0, "normalized_logit_diff": 0.5}
    circuit = {
        "model": "world-llama",
        "method": "lrp",
        "granularity": "head",
        "scope": "global",
        "n_seeds": 1,
        "dense": {"accuracy": 1.0, "logit_diff": 2.0},
        "curve": [{**point, "sparsity": s} for s in (0.0, 0.5)],
        "circuit": {
            "threshold": 0.9,
            "n_kept": 10,
            "n_components": 16,
            "kept_fraction": 0.625,
            "accuracy": 1.0,
            "normalized_logit_diff": 0.92,
        },
    }
    step = {
        "n_pruned": 0,
        "n_pruned_measured": 0,
        "pruned_fraction": 0.0,
        "metrics": {"greedy_toxic_fraction": 0.5, "word_perplexity:world_ppl": 7.0, "ppl_change:world_ppl": 0.0},
        "examples": [{"prompt": 'Kim hissed: "', "greedy": "You moron", "greedy_score": 0.9}],
    }
    correction = {
        "model": "world-llama",
        "behaviour": "toxicity",
        "method": "lrp",
        "granularity": "neuron",
        "normalization": "sum",
        "primary_ppl_task": "world_ppl",
        "curve": [{**step, "k": 0}, {**step, "k": 1}],
    }
    f = {}
    named = (("dense", dense), ("pruned", pruned), ("card", card), ("circuit", circuit), ("correction", correction))
    for name, record in named:
        f[f"{name}_json"] = d / f"{name}.json"
        f[f"{name}_json"].write_text(json.dumps(record))
    return f


@pytest.fixture(scope="session")
def quiet_session():
    import transformers

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    yield
    transformers.logging.set_verbosity(level)


@dataclass
class Ctx:
    tmp: Path
    f: dict

    def file(self, name: str, text: str | bytes) -> Path:
        path = self.tmp / name
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        return path


@dataclass
class Case:
    argv: list[str]
    outputs: list[Path]  # must not exist afterwards
    message: list[str]  # fragments of the error line: the file or flag, and the fix


CASES: dict[str, tuple[object, int]] = {}


def case(name: str, exit_code: int = 1):
    def register(build):
        assert name not in CASES
        CASES[name] = (build, exit_code)
        return build

    return register


# ---- argv builders ------------------------------------------------------------------------------


def refset(c: Ctx, kind: str, *extra, model=MODEL) -> Case:
    out = c.tmp / "refset.safetensors"
    argv = ["refset", "--kind", kind, "--model-dir", str(model), "--data-dir", str(DATA), "--n", "2", *extra]
    return Case([*argv, "--out", str(out)], [out], [])


def general_text(c: Ctx, text_file: Path, length: str = "8") -> Case:
    return refset(c, "general", "--source", "json", "--text-file", str(text_file), "--length", length)


def scores(c: Ctx, refset_file: Path, *, model=MODEL, method="magnitude", out=None) -> Case:
    out = out or c.tmp / "scores.safetensors"
    argv = ["scores", "--method", method, "--model-dir", str(model), "--refset", str(refset_file)]
    return Case([*argv, "--dtype", "float32", "--out", str(out)], [out], [])


def compress(c: Ctx, method: str, *extra, model=MODEL, template=None, sparsities="0.5") -> Case:
    template = template or str(c.tmp / "compress" / "sparsity_{sparsity}" / "metrics.json")
    argv = ["compress", "--model-dir", str(model), "--method", method, "--sparsities", sparsities, *extra]
    argv += ["--tasks", "world_ppl", "--data-dir", str(DATA), "--dtype", "float32", "--out-template", template]
    return Case(argv, [c.tmp / "compress"], [])


def export(c: Ctx, scores_file: Path, *, model=MODEL, method="magnitude", out_dir=None, sparsity="0.5") -> Case:
    out_dir = out_dir or c.tmp / "exported"
    argv = ["export-pruned", "--model-dir", str(model), "--method", method, "--scores", str(scores_file)]
    return Case([*argv, "--sparsity", sparsity, "--out-dir", str(out_dir)], [out_dir], [])


def circuit(c: Ctx, scores_files: list[Path], granularity="head", *extra, model=MODEL, eval_file=IOI_EVAL) -> Case:
    out_dir = c.tmp / "circuit"
    argv = ["circuit", "--model-dir", str(model), "--scores", ",".join(map(str, scores_files))]
    argv += ["--eval-file", str(eval_file), "--limit", "4", "--granularity", granularity, "--sparsities", "0.5"]
    argv += ["--bootstrap-resamples", "10", "--dtype", "float32", *extra, "--out-dir", str(out_dir)]
    return Case(argv, [out_dir], [])


def correction(c: Ctx, general: Path, unwanted: Path, *extra, model=MODEL, prompts=TOXIC, granularity="neuron") -> Case:
    out_dir = c.tmp / "correction"
    argv = ["correction", "--model-dir", str(model), "--general-scores", str(general)]
    argv += ["--unwanted-scores", str(unwanted), "--behaviour", "toxicity", "--granularity", granularity]
    argv += ["--ks", "1", "--prompts-file", str(prompts), "--n-prompts", "2", "--n-samples", "0", "--dtype", "float32"]
    return Case([*argv, *extra, "--data-dir", str(DATA), "--out-dir", str(out_dir)], [out_dir], [])


def ioi_data(c: Ctx, *, model=MODEL, out=None, n="4") -> Case:
    out = out or c.tmp / "ioi.jsonl"
    return Case(["ioi-data", "--model-dir", str(model), "--split", "reference", "--n", n, "--out", str(out)], [out], [])


def expect(built: Case, *message: str) -> Case:
    built.message = list(message)
    return built


# ---- JSONL inputs -------------------------------------------------------------------------------

LATIN1 = '{"prompt": "Ren\xe9 broke the ring of Jason, and Jason screamed: \\""}\n'.encode("latin-1")
NO_IO = '{"prompt": "Then, Mary and John went to the farm. John gave a ring to", "s": "John"}\n'


@case("jsonl: empty text file")
def _(c):
    p = c.file("empty.jsonl", "")
    return expect(general_text(c, p), f"{p} has no rows", "give a JSON Lines file", "'text'")


@case("jsonl: blank lines only")
def _(c):
    p = c.file("blank.jsonl", "\n   \n\t\n")
    return expect(general_text(c, p), f"{p} has no rows (empty, or blank lines only)", "give a JSON Lines file")


@case("jsonl: malformed line of IOI prompts")
def _(c):
    p = c.file("ioi.jsonl", IOI_EVAL.read_text().splitlines()[0] + '\n{"prompt": "Then,\n')
    return expect(refset(c, "ioi", "--prompts-file", str(p)), f"{p}:2 is not valid JSON", "one JSON object per line")


@case("jsonl: malformed line of a circuit's evaluation file")
def _(c):
    p = c.file("eval.jsonl", "\n".join(IOI_EVAL.read_text().splitlines()[:2]) + "\nprompt: Then\n")
    return expect(circuit(c, [c.f["activation"]], eval_file=p), f"{p}:3 is not valid JSON", "one JSON object per line")


@case("jsonl: non-UTF-8 correction prompts")
def _(c):
    p = c.file("latin1.jsonl", LATIN1)
    built = correction(c, c.f["magnitude"], c.f["magnitude_toxic"], prompts=p)
    return expect(built, f"{p}:1 is not UTF-8", "save the file as UTF-8")


@case("jsonl: non-UTF-8 circuit evaluation file")
def _(c):
    p = c.file("eval.jsonl", IOI_EVAL.read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\n" + LATIN1)
    line = p.read_bytes().count(b"\n")
    return expect(circuit(c, [c.f["activation"]], eval_file=p), f"{p}:{line} is not UTF-8", "save the file as UTF-8")


@case("jsonl: a row that is not an object")
def _(c):
    p = c.file("list.jsonl", '{"text": "Ann went home."}\n["Ann", "went", "home"]\n')
    return expect(general_text(c, p), f"{p}:2 is a JSON list, not an object", "one object per line")


@case("jsonl: general text without the text field")
def _(c):
    p = c.file("notext.jsonl", '{"text": "Ann went home."}\n{"txt": "Bob stayed."}\n')
    return expect(general_text(c, p), f"{p}:2 has no 'text' field", "every row needs 'text'")


@case("jsonl: IOI prompts without the io field")
def _(c):
    p = c.file("noio.jsonl", NO_IO)
    return expect(refset(c, "ioi", "--prompts-file", str(p)), f"{p}:1 has no 'io' field", "'prompt', 'io', 's'")


@case("jsonl: circuit evaluation rows without the s field")
def _(c):
    p = c.file("nos.jsonl", '{"prompt": "Then, Mary and John went. John gave a ring to", "io": "Mary"}\n')
    built = circuit(c, [c.f["activation"]], eval_file=p)
    return expect(built, f"{p}:1 has no 's' field", "every row needs 'prompt', 'io', 's'")


@case("jsonl: circuit-ablation evaluation rows without the prompt field")
def _(c):
    p = c.file("noprompt.jsonl", '{"text": "Then, Mary and John went.", "io": "Mary", "s": "John"}\n')
    out = c.tmp / "ablation.safetensors"
    argv = ["circuit-ablation", "--model-dir", str(MODEL), "--eval-file", str(p), "--n-weights", "4"]
    return Case([*argv, "--dtype", "float32", "--out", str(out)], [out], [f"{p}:1 has no 'prompt' field"])


@case("jsonl: behaviour prompts of a toxic reference set without the prompt field")
def _(c):
    p = c.file("noprompt.jsonl", '{"text": "William broke the ring."}\n')
    built = refset(c, "toxic", "--prompts-file", str(p), "--new-tokens", "2")
    return expect(built, f"{p}:1 has no 'prompt' field", "every row needs 'prompt'")


@case("jsonl: correction prompts without the prompt field")
def _(c):
    p = c.file("noprompt.jsonl", '{"text": "William broke the ring."}\n')
    built = correction(c, c.f["magnitude"], c.f["magnitude_toxic"], prompts=p)
    return expect(built, f"{p}:1 has no 'prompt' field", "every row needs 'prompt'")


@case("jsonl: correction control prompts without the prompt field")
def _(c):
    p = c.file("control.jsonl", '{"prompt": "Ann fixed the lamp, and Bob said: \\""}\n{"line": "x"}\n')
    built = correction(c, c.f["magnitude"], c.f["magnitude_toxic"], "--control-file", str(p))
    return expect(built, f"{p}:2 has no 'prompt' field", "every row needs 'prompt'")


@case("empty prompts: correction")
def _(c):
    p = c.file("empty.jsonl", "")
    built = correction(c, c.f["magnitude"], c.f["magnitude_toxic"], prompts=p)
    return expect(built, f"{p} has no rows", "'prompt'")


@case("empty prompts: toxic reference set")
def _(c):
    p = c.file("empty.jsonl", "\n")
    return expect(refset(c, "toxic", "--prompts-file", str(p)), f"{p} has no rows", "'prompt'")


@case("empty prompts: IOI reference set")
def _(c):
    p = c.file("empty.jsonl", "")
    return expect(refset(c, "ioi", "--prompts-file", str(p)), f"{p} has no rows", "'prompt', 'io', 's'")


@case("empty prompts: circuit evaluation file")
def _(c):
    p = c.file("empty.jsonl", "")
    return expect(circuit(c, [c.f["activation"]], eval_file=p), f"{p} has no rows", "'prompt', 'io', 's'")


@case("missing prompts file: correction")
def _(c):
    p = c.tmp / "absent.jsonl"
    built = correction(c, c.f["magnitude"], c.f["magnitude_toxic"], prompts=p)
    return expect(built, f"{p} does not exist or is not a file", "JSON Lines")


@case("too-short text: a local file for a general reference set")
def _(c):
    p = c.file("short.jsonl", '{"text": "Ann went home."}\n')
    return expect(
        general_text(c, p, length="64"), f"{p} has no document longer than one window of 64 tokens", "--length"
    )


@case("too-short text: the world's general text for a huge window")
def _(c):
    built = refset(c, "general", "--length", "10000000")
    return expect(built, "the world general text has no document longer than one window of 10000000 tokens", "--length")


@case("missing data folder: the world's general text without --data-dir")
def _(c):
    built = refset(c, "general", "--length", "8")
    i = built.argv.index("--data-dir")
    del built.argv[i : i + 2]
    return expect(built, "the world's general reference data needs its data folder", "give --data-dir")


@case("missing data folder: the world's IOI prompts without --data-dir")
def _(c):
    built = refset(c, "ioi")
    i = built.argv.index("--data-dir")
    del built.argv[i : i + 2]
    return expect(built, "the world's ioi reference data needs its data folder", "--data-dir (or --prompts-file)")


# ---- model folders -------------------------------------------------------------------------------


@case("model folder: missing (refset)")
def _(c):
    m = c.tmp / "no-such-model"
    return expect(refset(c, "ioi", model=m), f"{m}/download.json is missing", "snakemake download")


@case("model folder: missing (ioi-data)")
def _(c):
    m = c.tmp / "no-such-model"
    return expect(ioi_data(c, model=m), f"{m}/download.json is missing", "snakemake download")


@case("model folder: missing (compress)")
def _(c):
    m = c.tmp / "no-such-model"
    built = compress(c, "magnitude", "--scores", str(c.f["magnitude"]), model=m)
    return expect(built, f"{m}/download.json is missing", "snakemake download")


@case("model folder: a file, not a folder (scores)")
def _(c):
    m = c.f["model_file"]
    return expect(scores(c, c.f["general"], model=m), f"{m}/download.json is missing", "snakemake download")


@case("model folder: no config.json (scores)")
def _(c):
    m = c.f["model_no_config"]
    return expect(scores(c, c.f["general"], model=m), f"{m}/download.json is missing", "snakemake download")


@case("model folder: config.json is not JSON (compress)")
def _(c):
    m = c.f["model_bad_config"]
    built = compress(c, "magnitude", "--scores", str(c.f["magnitude"]), model=m)
    return expect(built, f"{m}/config.json is not valid JSON", "download or save the model again")


@case("model folder: truncated weights (export-pruned)")
def _(c):
    m = c.f["model_truncated"]
    built = export(c, c.f["magnitude"], model=m)
    return expect(built, f"the model weights in {m} cannot be loaded", "download or save the model again")


@case("model folder: truncated weights (circuit)")
def _(c):
    m = c.f["model_truncated"]
    built = circuit(c, [c.f["activation"]], model=m)
    return expect(built, f"the model weights in {m} cannot be loaded", "download or save the model again")


@case("model folder: no tokenizer (refset)")
def _(c):
    m = c.f["model_no_tokenizer"]
    return expect(refset(c, "ioi", model=m), f"no usable tokenizer in {m}", "save the model's tokenizer files")


@case("model folder: no tokenizer (ioi-data)")
def _(c):
    m = c.f["model_no_tokenizer"]
    return expect(ioi_data(c, model=m), f"no usable tokenizer in {m}", "save the model's tokenizer files")


@case("model folder: no tokenizer (correction)")
def _(c):
    m = c.f["model_no_tokenizer"]  # same weights: the scores belong to it
    built = correction(c, c.f["magnitude"], c.f["magnitude_toxic"], model=m)
    return expect(built, f"no usable tokenizer in {m}", "save the model's tokenizer files")


@case("model folder: config.json of another architecture than its weights (scores)")
def _(c):
    m = c.f["model_opt_config"]
    built = scores(c, c.f["general"], model=m)
    what = "weights of OPTForCausalLM are not in the files (lm_head.weight, model.decoder.embed_positions.weight"
    return expect(built, f"the weights in {m} do not match the architecture its config.json names", what, "unused")


@case("model folder: config.json's architectures names another class (scores)")
def _(c):
    m = c.f["model_other_class"]
    built = scores(c, c.f["general"], model=m, method="activation")
    return expect(built, f"{m} do not match", "config.json names OPTForCausalLM but its model_type 'llama' builds")


@case("model folder: a weight missing from the files (compress)")
def _(c):
    m = c.f["model_missing_tensor"]
    built = compress(c, "magnitude", "--scores", str(c.f["magnitude"]), model=m)
    what = (
        "1 weights of LlamaForCausalLM are not in the files (model.layers.1.mlp.down_proj.weight; they would be random)"
    )
    return expect(built, f"the weights in {m} do not match", what, "download or save the model again")


@case("model folder: a tensor the model does not use (circuit)")
def _(c):
    m = c.f["model_extra_tensor"]
    built = circuit(c, [c.f["activation"]], model=m)
    return expect(built, f"the weights in {m} do not match", "1 tensors in the files are unused (model.extra.weight)")


@case("model folder: a tensor of another shape (circuit-ablation)")
def _(c):
    m, out = c.f["model_shape"], c.tmp / "ablation.safetensors"
    argv = ["circuit-ablation", "--model-dir", str(m), "--eval-file", str(IOI_EVAL), "--limit", "4", "--out", str(out)]
    built = Case(argv, [out], [])
    return expect(built, f"the weights in {m} do not match", "a tensor's shape differs (size mismatch", "[256, 128]")


@case("model folder: tokenizer larger than the embedding (export-pruned)")
def _(c):
    m = c.f["model_big_vocab"]
    built = export(c, c.f["magnitude"], model=m)
    return expect(built, f"the tokenizer in {m} has {ROWS + 5} tokens but the model's embedding only {ROWS} rows")


@case("model folder: tokenizer larger than the embedding (world-card)")
def _(c):
    m, out = c.f["model_big_vocab"], c.tmp / "card.json"
    built = Case(["world-card", "--model-dir", str(m), "--data-dir", str(DATA), "--out", str(out)], [out], [])
    return expect(built, f"the tokenizer in {m} has {ROWS + 5} tokens", "save the model's own tokenizer")


# ---- a hub model that is not downloaded: every stage that loads a model ----------------------------

HUB = Path("resources") / "models" / "tinyllama-1.1b"


def _hub(c: Ctx) -> Path:
    return c.tmp / HUB  # a hub model's folder, never downloaded


_NOT_DOWNLOADED = {
    "refset": lambda c: refset(c, "ioi", model=_hub(c)),
    "scores": lambda c: scores(c, c.f["general"], model=_hub(c)),
    "compress": lambda c: compress(c, "magnitude", "--scores", str(c.f["magnitude"]), model=_hub(c)),
    "compress --method none": lambda c: Case(
        ["compress", "--method", "none", "--sparsities", "0", "--model-dir", str(_hub(c)), "--tasks", "world_ppl"]
        + ["--data-dir", str(DATA), "--out-template", str(c.tmp / "dense" / "metrics.json")],
        [c.tmp / "dense"],
        [],
    ),
    "export-pruned": lambda c: export(c, c.f["magnitude"], model=_hub(c)),
    "ioi-data": lambda c: ioi_data(c, model=_hub(c)),
    "circuit-ablation": lambda c: Case(
        ["circuit-ablation", "--model-dir", str(_hub(c)), "--eval-file", str(IOI_EVAL)]
        + ["--out", str(c.tmp / "ablation.safetensors")],
        [c.tmp / "ablation.safetensors"],
        [],
    ),
    "circuit": lambda c: circuit(c, [c.f["activation"]], model=_hub(c)),
    "behaviour-prompts": lambda c: Case(
        ["behaviour-prompts", "--model-dir", str(_hub(c)), "--behaviour", "repetition"]
        + ["--reference-out", str(c.tmp / "ref.jsonl"), "--evaluation-out", str(c.tmp / "eval.jsonl")],
        [c.tmp / "ref.jsonl", c.tmp / "eval.jsonl"],
        [],
    ),
    "correction": lambda c: correction(c, c.f["magnitude"], c.f["magnitude_toxic"], model=_hub(c)),
    "world-card": lambda c: Case(
        ["world-card", "--model-dir", str(_hub(c)), "--data-dir", str(DATA), "--out", str(c.tmp / "card.json")],
        [c.tmp / "card.json"],
        [],
    ),
}
for _stage, _build in _NOT_DOWNLOADED.items():
    case(f"hub model not downloaded ({_stage})")(
        lambda c, build=_build: expect(
            build(c), f"model tinyllama-1.1b is not downloaded ({_hub(c)}", "snakemake download"
        )
    )


@case("hub model: download.json cut short (scores)")
def _(c):
    m = c.tmp / HUB
    m.mkdir(parents=True)
    (m / "download.json").write_text('{"hf_id": "TinyLlama/TinyLlama_v1.1", "files": [{"name": "config.j')
    built = scores(c, c.f["general"], model=m)
    return expect(built, f"{m / 'download.json'} is not valid JSON (truncated or malformed", "rerun the job")


# ---- files the workflow wrote, read back by the table stages -------------------------------------


def compression_tables(c: Ctx, *metrics: Path) -> Case:
    out = c.tmp / "tables"
    argv = ["compression-tables", "--metrics", ",".join(map(str, metrics)), "--csv", str(out / "c.csv")]
    return Case([*argv, "--markdown", str(out / "c.md"), "--plots-dir", str(out / "plots")], [out], [])


def _edited(c: Ctx, name: str, source: Path, edit) -> Path:
    import json

    record = json.loads(source.read_text())
    edit(record)
    return c.file(name, json.dumps(record))


@case("written file: metrics.json cut in half (compression-tables)")
def _(c):
    text = c.f["pruned_json"].read_text()
    p = c.file("metrics.json", text[: len(text) // 2])
    built = compression_tables(c, c.f["dense_json"], p)
    return expect(built, f"{p} is not valid JSON (truncated or malformed", "delete it and rerun the job that writes it")


@case("written file: metrics.json without its metrics rows (compression-tables)")
def _(c):
    p = _edited(c, "metrics.json", c.f["pruned_json"], lambda r: r.pop("metrics"))
    return expect(compression_tables(c, c.f["dense_json"], p), f"{p}: key 'metrics' is missing")


@case("written file: a metric value written as a string (compression-tables)")
def _(c):
    p = _edited(c, "metrics.json", c.f["pruned_json"], lambda r: r["metrics"][0].update(value="5.0"))
    built = compression_tables(c, c.f["dense_json"], p)
    return expect(built, f"{p}: key 'metrics[0].value' is a string, not a number", "rerun the job")


@case("written file: NaN measured sparsity (compression-tables)")
def _(c):
    p = _edited(c, "metrics.json", c.f["pruned_json"], lambda r: r.update(sparsity_measured=float("nan")))
    return expect(compression_tables(c, c.f["dense_json"], p), f"{p}: key 'sparsity_measured' is nan, not a finite")


@case("written file: metrics.json holds a list (compression-tables)")
def _(c):
    p = c.file("metrics.json", "[1, 2]\n")
    return expect(compression_tables(c, c.f["dense_json"], p), f"{p}: its content is a list, not an object")


@case("written file: structured metrics.json with a ratio that is not a number (structured-tables)")
def _(c):
    p = _edited(
        c,
        "metrics.json",
        c.f["pruned_json"],
        lambda r: r.update(ratio="0.5", reference_set=None, parameters=9, structure={}),
    )
    out = c.tmp / "tables"
    argv = ["structured-tables", "--metrics", str(p), "--dense", str(c.f["dense_json"]), "--speed", str(p)]
    built = Case([*argv, "--csv", str(out / "s.csv"), "--markdown", str(out / "s.md")], [out], [])
    return expect(built, f"{p}: key 'ratio' is a string, not a number", "rerun the job")


def circuit_tables(c: Ctx, curve: Path) -> Case:
    out = c.tmp / "tables"
    argv = ["circuit-tables", "--curves", str(curve), "--csv", str(out / "c.csv"), "--summary-csv"]
    argv += [str(out / "s.csv"), "--markdown", str(out / "c.md"), "--plots-dir", str(out / "p")]
    return Case(argv, [out], [])


def correction_tables(c: Ctx, curve: Path) -> Case:
    out = c.tmp / "tables"
    argv = ["correction-tables", "--curves", str(curve), "--csv", str(out / "c.csv"), "--markdown"]
    argv += [str(out / "c.md"), "--plots-dir", str(out / "p"), "--examples-md", str(out / "e.md")]
    return Case(argv, [out], [])


@case("written file: circuit curve.json with a NaN dense logit difference (circuit-tables)")
def _(c):
    p = _edited(c, "curve.json", c.f["circuit_json"], lambda r: r["dense"].update(logit_diff=float("nan")))
    return expect(circuit_tables(c, p), f"{p}: key 'dense.logit_diff' is nan, not a finite number")


@case("written file: circuit curve.json without its circuit (circuit-tables)")
def _(c):
    p = _edited(c, "curve.json", c.f["circuit_json"], lambda r: r.pop("circuit"))
    return expect(circuit_tables(c, p), f"{p}: key 'circuit' is missing", "delete it and rerun the job")


@case("written file: correction curve.json without the primary task's perplexity (correction-tables)")
def _(c):
    def edit(r):
        del r["curve"][1]["metrics"]["word_perplexity:world_ppl"]

    (c.tmp / "run").mkdir()  # a folder of its own, as the stage writes it (generations.jsonl would be beside)
    p = _edited(c, "run/curve.json", c.f["correction_json"], edit)
    return expect(correction_tables(c, p), f"{p}: key 'curve[1].metrics.word_perplexity:world_ppl' is missing")


@case("written file: world card without its IOI accuracy (world-card-table)")
def _(c):
    p = _edited(c, "card.json", c.f["card_json"], lambda r: r["card"]["ioi_heldout_names"].pop("accuracy"))
    out = c.tmp / "card.md"
    built = Case(["world-card-table", "--cards", f"{c.f['card_json']},{p}", "--out", str(out)], [out], [])
    return expect(built, f"{p}: card: key 'IOI accuracy, held-out names' cannot be read (KeyError: 'accuracy')")


@case("written file: scores header whose record is not JSON (compress)")
def _(c):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(c.f["magnitude"]), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        header = f.metadata()
    p = c.tmp / "scores.safetensors"
    save_file(tensors, str(p), metadata={"scores": header["scores"][: len(header["scores"]) // 2]})
    built = compress(c, "magnitude", "--scores", str(p))
    return expect(built, f"{p}: its scores record is not valid JSON (truncated or malformed")


@case("written file: scores header with a storage that is not a string (compress)")
def _(c):
    p = _rewrite(c.f["magnitude"], c.tmp / "scores.safetensors", storage=16)
    built = compress(c, "magnitude", "--scores", str(p))
    return expect(built, f"{p} (scores record in its header): key 'storage' is a number, not a string")


# ---- reference-set and score files ---------------------------------------------------------------


@case("refset file: missing (scores)")
def _(c):
    p = c.tmp / "absent.safetensors"
    return expect(scores(c, p), f"{p} does not exist", "run the stage (workflow rule) that writes it")


@case("refset file: truncated (scores)")
def _(c):
    p = c.f["truncated_refset"]
    return expect(scores(c, p), f"{p} is not a complete safetensors file", "delete it and rerun the stage")


@case("refset file: not safetensors (scores)")
def _(c):
    p = c.f["text"]
    return expect(scores(c, p), f"{p} is not a complete safetensors file", "delete it and rerun the stage")


@case("refset file: a scores file instead (scores)")
def _(c):
    p = c.f["magnitude"]
    return expect(scores(c, p), f"{p} has no 'refset' record", "is it a refset file written by this suite?")


@case("refset file: no samples (scores)")
def _(c):
    p = c.f["empty_refset"]
    return expect(scores(c, p), f"reference set {p} is empty", "rebuild it with `python -m attrprune refset`")


@case("refset file: missing calibration set (compress)")
def _(c):
    p = c.tmp / "absent.safetensors"
    built = compress(c, "sparsegpt", "--scope", "layer", "--calibration", str(p))
    return expect(built, f"{p} does not exist", "run the stage (workflow rule) that writes it")


@case("refset file: a scores file as calibration set (compress)")
def _(c):
    p = c.f["magnitude"]
    built = compress(c, "sparsegpt", "--scope", "layer", "--calibration", str(p))
    return expect(built, f"{p} has no 'refset' record", "is it a refset file written by this suite?")


@case("refset file: missing mean-ablation reference (circuit)")
def _(c):
    p = c.tmp / "absent.safetensors"
    built = circuit(c, [c.f["activation"]], "head", "--ablation-value", "mean", "--mean-reference", str(p))
    return expect(built, f"{p} does not exist", "run the stage (workflow rule) that writes it")


@case("scores file: truncated (compress)")
def _(c):
    p = c.f["truncated"]
    built = compress(c, "magnitude", "--scores", str(p))
    return expect(built, f"{p} is not a complete safetensors file", "delete it and rerun the stage")


@case("scores file: no metadata (compress)")
def _(c):
    p = c.f["no_meta"]
    built = compress(c, "magnitude", "--scores", str(p))
    return expect(built, f"{p} has no 'scores' record", "is it a scores file written by this suite?")


@case("scores file: a reference set instead (export-pruned)")
def _(c):
    p = c.f["general"]
    return expect(export(c, p), f"{p} has no 'scores' record", "is it a scores file written by this suite?")


@case("scores file: another model's (compress)")
def _(c):
    p = c.f["other_model"]
    built = compress(c, "magnitude", "--scores", str(p))
    return expect(built, f"{p} was computed on another checkpoint", "score this model")


@case("scores file: another model's (export-pruned)")
def _(c):
    p = c.f["other_model"]
    return expect(export(c, p), f"{p} was computed on another checkpoint", "score this model")


@case("scores file: another model's (correction)")
def _(c):
    p = c.f["other_model"]
    built = correction(c, p, c.f["magnitude_toxic"])
    return expect(built, f"{p} was computed on another checkpoint", "score this model")


@case("scores file: no model_sha256 (circuit)")
def _(c):
    p = c.f["no_model_sha"]
    built = circuit(c, [p], "neuron")
    return expect(built, f"{p} does not record the checkpoint", "delete it and rerun its scores job")


@case("scores file: NaN (compress)")
def _(c):
    p = c.f["nan"]
    built = compress(c, "magnitude", "--scores", str(p))
    return expect(built, f"{p} holds non-finite scores", "delete it and rerun its scores job")


@case("scores file: Inf (compress)")
def _(c):
    p = c.f["inf"]
    built = compress(c, "magnitude", "--scores", str(p))
    return expect(built, f"{p} holds non-finite scores", "delete it and rerun its scores job")


@case("scores file: Inf (circuit)")
def _(c):
    p = c.f["inf"]
    return expect(circuit(c, [p], "weight"), f"{p} holds non-finite scores", "delete it and rerun its scores job")


@case("ablation file: missing (circuit, before the sweep)")
def _(c):
    p = c.tmp / "absent.safetensors"
    built = circuit(c, [c.f["activation"]], "head", "--ablation", str(p))
    return expect(built, f"{p} does not exist", "run the stage (workflow rule) that writes it")


@case("ablation file: a reference set instead (circuit)")
def _(c):
    p = c.f["general"]
    built = circuit(c, [c.f["activation"]], "head", "--ablation", str(p))
    return expect(built, f"{p} has no 'ablation' record", "is it a ablation file written by this suite?")


# ---- scores of the wrong kind for a stage --------------------------------------------------------


@case("wrong kind: circuit of heads from magnitude scores (no head scores)")
def _(c):
    p = c.f["magnitude"]
    built = circuit(c, [p], "head")
    return expect(built, f"magnitude scores ({p}) have no head scores", "use scores of a method that scores heads")


@case("wrong kind: circuit of weights from activation scores (no weight scores)")
def _(c):
    p = c.f["activation"]
    built = circuit(c, [p], "weight")
    return expect(built, f"activation scores ({p}) have no weight scores", "use scores of a method that scores weights")


@case("wrong kind: compress lrp with magnitude scores")
def _(c):
    p = c.f["magnitude"]
    built = compress(c, "lrp", "--scores", str(p))
    return expect(built, f"lrp prunes by lrp scores; {p} holds magnitude scores", "scores --method lrp")


@case("wrong kind: compress gradient with activation scores (structured only)")
def _(c):
    p = c.f["activation"]
    built = compress(c, "gradient", "--scores", str(p))
    return expect(built, f"{p} holds activation scores", "scores --method gradient")


@case("wrong kind: export-pruned random with magnitude scores")
def _(c):
    p = c.f["magnitude"]
    built = export(c, p, method="random")
    return expect(built, f"random prunes by random scores; {p} holds magnitude scores", "scores --method random")


@case("wrong kind: compress with a calibrated pruner given scores")
def _(c):
    calibration = ["--calibration", str(c.f["general"])]
    built = compress(c, "sparsegpt", "--scope", "layer", *calibration, "--scores", str(c.f["magnitude"]))
    return expect(built, "sparsegpt is a calibrated pruner and reads no scores", "drop --scores")


@case("wrong kind: correction's unwanted scores on general text")
def _(c):
    built = correction(c, c.f["magnitude"], c.f["magnitude"])
    return expect(built, "unwanted scores (--unwanted-scores) on a 'toxic' reference set, got 'general'", "score the")


@case("wrong kind: correction's general scores on a behaviour set")
def _(c):
    built = correction(c, c.f["magnitude_toxic"], c.f["magnitude_toxic"])
    return expect(built, "general scores (--general-scores) were computed on a 'toxic'", "pass scores on general text")


@case("wrong kind: correction contrasting two methods")
def _(c):
    built = correction(c, c.f["magnitude"], c.f["activation_toxic"])
    return expect(built, "'magnitude', unwanted scores (--unwanted-scores) 'activation'", "of the same method")


@case("wrong kind: correction of weights from activation scores")
def _(c):
    p = c.f["activation"]
    built = correction(c, p, c.f["activation_toxic"], granularity="weight")
    return expect(built, f"activation scores ({p}) have no weight scores", "use scores of a method that scores weights")


@case("wrong kind: correction ks beyond the components")
def _(c):
    built = correction(c, c.f["magnitude"], c.f["magnitude_toxic"], "--ks", "100000000")
    return expect(built, "ks [100000000] exceed the", "lower them")


@case("bad value: unknown compression scope (not N:M)")
def _(c):
    built = compress(c, "magnitude", "--scope", "rows", "--scores", str(c.f["magnitude"]))
    return expect(built, "unknown pruning scope 'rows'", "'row', 'layer', 'global'")


@case("bad value: circuit scope of another granularity")
def _(c):
    built = circuit(c, [c.f["activation"]], "neuron", "--scope", "row")
    return expect(built, "scope 'row' does not apply to neuron circuits", "valid: ['global', 'layer']")


@case("bad value: published circuit of a neuron circuit")
def _(c):
    built = circuit(c, [c.f["activation"]], "neuron", "--published-circuit", "gpt2-small-ioi")
    return expect(built, "published circuits are head circuits", "neuron circuits take none")


# ---- outputs -------------------------------------------------------------------------------------


@case("output: scores --out is a folder")
def _(c):
    out = c.tmp / "folder"
    out.mkdir()
    built = scores(c, c.f["general"], out=out)
    built.outputs = [out / "scores.safetensors"]
    return expect(built, f"the output path is a folder ({out})", "give a file path")


@case("output: ioi-data --out is a folder")
def _(c):
    out = c.tmp / "folder"
    out.mkdir()
    built = ioi_data(c, out=out)
    built.outputs = [out / "ioi.jsonl"]
    return expect(built, f"the output path is a folder ({out})", "give a file path")


@case("output: a part of the output path is a file")
def _(c):
    blocker = c.file("blocker", "a file where a folder should be\n")
    return expect(
        ioi_data(c, out=blocker / "ioi.jsonl"), f"Not a directory ({blocker})", "a part of the path is a file"
    )


@case("output: compress metrics path is a folder")
def _(c):
    (c.tmp / "compress" / "sparsity_0.50" / "metrics.json").mkdir(parents=True)
    built = compress(c, "magnitude", "--scores", str(c.f["magnitude"]))
    built.outputs = [c.tmp / "compress" / "sparsity_0.50" / "lm_eval.json"]
    return expect(built, "the output path is a folder", "metrics.json): give a file path")


@case("output: compress template with an unknown placeholder")
def _(c):
    template = str(c.tmp / "compress" / "{spars}" / "metrics.json")
    built = compress(c, "magnitude", "--scores", str(c.f["magnitude"]), template=template)
    return expect(built, "--out-template", "has a placeholder other than {sparsity}")


@case("output: compress template without {sparsity}, two sparsities")
def _(c):
    template = str(c.tmp / "compress" / "metrics.json")
    built = compress(c, "magnitude", "--scores", str(c.f["magnitude"]), template=template, sparsities="0.3,0.5")
    return expect(built, "gives every sparsity the same path", "put {sparsity} in it")


@case("output: export-pruned --out-dir is a file")
def _(c):
    out = c.file("exported", "a file\n")
    built = export(c, c.f["magnitude"], out_dir=out)
    built.outputs = []  # the file stays as it was (checked below with the folder's contents)
    return expect(built, f"the output folder {out} is a file", "give another --out-dir")


@case("output: unwritable output folder")
def _(c):
    folder = c.tmp / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # root ignores the mode
        folder.chmod(0o700)
        pytest.skip("the output folder stays writable (running as root)")
    return expect(ioi_data(c, out=folder / "ioi.jsonl"), "Permission denied", "make it readable / writable")


# ---- bad numbers and choices on the command line: argparse's usage errors, exit 2 ----------------


@case("usage: refset --n -1", exit_code=2)
def _(c):
    return expect(refset(c, "ioi", "--n", "-1"), "argument --n: must be a positive integer, got -1")


@case("usage: ioi-data --n 0", exit_code=2)
def _(c):
    return expect(ioi_data(c, n="0"), "argument --n: must be a positive integer, got 0")


@case("usage: compress --sparsities 1.0", exit_code=2)
def _(c):
    built = compress(c, "magnitude", "--scores", str(c.f["magnitude"]), sparsities="0.5,1.0")
    return expect(built, "argument --sparsities: sparsities must lie in [0, 1), got 0.5,1.0")


@case("usage: compress --sparsities -0.1", exit_code=2)
def _(c):
    built = compress(c, "magnitude", "--scores", str(c.f["magnitude"]), sparsities="-0.1")
    return expect(built, "argument --sparsities: sparsities must lie in [0, 1)")


@case("usage: compress --sparsities not a number", exit_code=2)
def _(c):
    built = compress(c, "magnitude", "--scores", str(c.f["magnitude"]), sparsities="half")
    return expect(built, "argument --sparsities: invalid sparsities value: 'half'")


@case("usage: export-pruned --sparsity 1.5", exit_code=2)
def _(c):
    return expect(
        export(c, c.f["magnitude"], sparsity="1.5"), "argument --sparsity: sparsities must lie in [0, 1), got 1.5"
    )


@case("usage: scores --batch-size 0", exit_code=2)
def _(c):
    built = scores(c, c.f["general"])
    built.argv += ["--batch-size", "0"]
    return expect(built, "argument --batch-size: must be a positive integer, got 0")


@case("usage: circuit --threshold -1", exit_code=2)
def _(c):
    return expect(circuit(c, [c.f["activation"]], "head", "--threshold", "-1"), "argument --threshold: must be > 0")


@case("usage: correction --ks -1", exit_code=2)
def _(c):
    built = correction(c, c.f["magnitude"], c.f["magnitude_toxic"], "--ks", "-1")
    return expect(built, "argument --ks: ks must be comma-separated non-negative integers, got -1")


@case("usage: unknown scoring method", exit_code=2)
def _(c):
    return expect(scores(c, c.f["general"], method="taylor"), "argument --method: invalid choice: 'taylor'")


@case("usage: unknown reference-set kind", exit_code=2)
def _(c):
    return expect(refset(c, "sentiment"), "argument --kind: invalid choice: 'sentiment'")


@case("usage: unknown circuit granularity", exit_code=2)
def _(c):
    return expect(circuit(c, [c.f["activation"]], "layer"), "argument --granularity: invalid choice: 'layer'")


@case("usage: correction granularity it does not prune", exit_code=2)
def _(c):
    built = correction(c, c.f["activation"], c.f["activation_toxic"], granularity="head")
    return expect(built, "argument --granularity: invalid choice: 'head'")


@case("usage: unknown behaviour", exit_code=2)
def _(c):
    built = correction(c, c.f["magnitude"], c.f["magnitude_toxic"])
    built.argv[built.argv.index("toxicity")] = "sarcasm"
    return expect(built, "argument --behaviour: invalid choice: 'sarcasm'")


@case("usage: unknown dtype", exit_code=2)
def _(c):
    built = scores(c, c.f["general"])
    built.argv[built.argv.index("float32")] = "float64"
    return expect(built, "argument --dtype: invalid choice: 'float64'")


@case("usage: a required flag missing", exit_code=2)
def _(c):
    built = scores(c, c.f["general"])
    built.argv = built.argv[: built.argv.index("--out")]
    return expect(built, "the following arguments are required: --out")


# ---- the test ------------------------------------------------------------------------------------


def _tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def test_the_written_files_of_the_cases_are_valid(made, tmp_path):
    """The table cases damage valid files: undamaged, the same files make the tables."""
    c = Ctx(tmp_path, made)
    assert run(compression_tables(c, made["dense_json"], made["pruned_json"]).argv) == 0
    assert run(["world-card-table", "--cards", str(made["card_json"]), "--out", str(tmp_path / "card.md")]) == 0
    for build, name in ((circuit_tables, "circuit_json"), (correction_tables, "correction_json")):
        shutil.rmtree(tmp_path / "tables", ignore_errors=True)
        assert run(build(c, made[name]).argv) == 0


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line(name, made, tmp_path, capsys):
    build, exit_code = CASES[name]
    built = build(Ctx(tmp_path, made))
    stage = built.argv[0]
    before, shared = _tree(tmp_path), _tree(Path(made["general"]).parent)
    capsys.readouterr()
    if exit_code == 2:
        with pytest.raises(SystemExit) as exited:
            run(built.argv)
        code = exited.value.code
    else:
        code = run(built.argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == exit_code, err
    assert "Traceback" not in err and "Logging error" not in err, err
    assert sum(": error:" in line for line in lines) == 1, err
    last = lines[-1]
    prefix = f"python -m attrprune {stage}: error: " if exit_code == 2 else f"attrprune {stage}: error: "
    assert last.startswith(prefix), err
    for fragment in built.message:
        assert fragment in last, f"{fragment!r} not in {last!r}"
    for out in built.outputs:
        assert not out.exists(), f"{out} was left behind"
    assert _tree(tmp_path) == before, "a file was written (or a temporary file left behind)"
    assert _tree(Path(made["general"]).parent) == shared


def test_a_failed_compress_job_removes_the_sparsities_it_finished(made, tmp_path, capsys, monkeypatch):
    """The first sparsity is evaluated and written; the second fails: its metrics, and the first
    sparsity's metrics and lm_eval.json, are gone (no half-finished job the workflow could trust)."""
    import attrprune.evaluation.lm as lm

    calls = []

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("the lm-eval task world_ppl failed on purpose (test)")
        return {"results": {"world_ppl": {"word_perplexity,none": 3.0}}, "versions": {}, "n-samples": {}}

    monkeypatch.setattr(lm, "evaluate_lm", evaluate)
    built = compress(Ctx(tmp_path, made), "magnitude", "--scores", str(made["magnitude"]), sparsities="0.3,0.5")
    assert run(built.argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "attrprune compress: error: the lm-eval task world_ppl failed on purpose (test)", err
    assert len(calls) == 2
    assert [p for p in (tmp_path / "compress").rglob("*") if p.is_file()] == []


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(made, tmp_path, capsys, monkeypatch):
    """No space left while the scores are written: half a temporary file was on disk; it is gone,
    the scores file was never created, and the message names the file system problem and the fix."""
    import errno

    import safetensors.torch

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 1000)  # part of the file made it to disk
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    built = scores(Ctx(tmp_path, made), made["general"])
    assert run(built.argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"attrprune scores: error: No space left on device ({built.outputs[0]}): "), err
    assert err[-1].endswith("no space left on the device: free some, or write the results elsewhere"), err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stage", ["compression-tables", "behaviour-prompts"])
def test_any_stage_that_fails_after_a_write_removes_what_it_wrote(stage, tmp_path, capsys, monkeypatch):
    """The error boundary itself (not each stage) removes the outputs a failed stage completed: here
    two tables are written, the third write finds the disk full. A file the stage did not write stays."""
    import errno

    import attrprune.correction.prompts as prompts
    import attrprune.tables as tables
    from attrprune.io import atomic_write_text

    kept = tmp_path / "earlier.md"
    kept.write_text("a table from an earlier run\n")
    first, second = tmp_path / "t" / "a.csv", tmp_path / "t" / "a.md"

    def writes_then_fails(*args, **kwargs):
        atomic_write_text(first, "x\n")
        atomic_write_text(second, "y\n")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "t" / "a.png"))

    if stage == "compression-tables":
        monkeypatch.setattr(tables, "compression_tables", writes_then_fails)
        argv = [stage, "--metrics", "m.json", "--csv", str(first), "--markdown", str(second), "--plots-dir", "p"]
    else:
        monkeypatch.setattr(prompts, "behaviour_prompts", writes_then_fails)
        argv = [stage, "--model-dir", "m", "--behaviour", "toxicity"]
        argv += ["--reference-out", str(first), "--evaluation-out", str(second)]
    assert run(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(f"attrprune {stage}: error: No space")
    assert not first.exists() and not second.exists()
    assert kept.read_text() == "a table from an earlier run\n"
