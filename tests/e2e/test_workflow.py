"""The workflow as Snakemake sees it: lint, dry runs, and config errors.

Every run uses a temporary --directory without a config.yaml, so only the config given
with --configfile applies, nothing is written into the repository, and the committed
world/ must be found through the Snakefile's location rather than the working directory.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from attrprune import config as config_checks
from attrprune import registry

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "config.yaml"
E2E_CONFIG = ROOT / "tests" / "e2e" / "config.yaml"
COMMITTED_WORLD = [
    ROOT / "world" / "models" / "world-llama" / "model.safetensors",
    ROOT / "world" / "models" / "world-opt" / "model.safetensors",
    ROOT / "world" / "data" / "manifest.json",
]


def snakemake(workdir, *configfiles_and_args, timeout=120):
    """Snakemake on the config files given first (paths), then the other arguments (strings)."""
    configfiles = [str(a) for a in configfiles_and_args if isinstance(a, Path)]
    args = [a for a in configfiles_and_args if not isinstance(a, Path)]
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", *configfiles,
        "--workflow-profile", "none",
        "--cores", "1",
        *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def job_counts(output):
    """{rule: count} from the "Job stats:" table of a dry run."""
    lines = output.split("Job stats:", 1)[1].splitlines()
    counts = {}
    for line in lines[3:]:  # after the header and its underline
        fields = line.split()
        if len(fields) != 2 or fields[0] == "total":
            break
        counts[fields[0]] = int(fields[1])
    return counts


def workflow_config(*configfiles):
    """The config as the workflow validates it: the files merged in order (later keys win, as
    with several --configfile), then the schema's defaults filled in where a key is missing
    (attrprune.config, as the workflow's own check does)."""

    def merge(base, new):
        for key, value in new.items():
            base[key] = (
                merge(base.get(key, {}), value)
                if isinstance(value, dict) and isinstance(base.get(key), dict)
                else value
            )
        return base

    config = {}
    for path in configfiles:
        merge(config, yaml.safe_load(path.read_text()))
    config_checks.validate(config, config_checks.load_schema(ROOT / "schemas" / "config.schema.yaml"))
    return config


def expected_jobs(config):
    """{rule: job count} that `config` asks for, from its lists and the registry's tables (what
    each method scores, reads and prunes): the stages' own jobs, then the scores and reference
    sets they read (each once), then one job per model or per table. World-data models only (a
    hub model adds downloads and behaviour prompts)."""
    models = list(config["models"])

    def stage_models(stage):
        return models if config[stage].get("models") is None else list(config[stage]["models"])

    def names(kind):
        return [f"{kind}-s{seed}" for seed in config["refsets"][kind]["seeds"]]

    def is_world(model):
        spec = config["models"][model]
        return spec["source"] == "world" or spec.get("data") == "world"

    general = names("general")
    scores, refsets = set(), set()  # (model, method, refset), (model, refset)
    c = config["compression"]
    compress, compression_models = 0, stage_models("compression")
    for model in compression_models:
        for method in c["methods"]:
            for scope in c["method_scopes"].get(method, c["scopes"]):
                by = registry.compression_methods()[method]
                base, allocation = registry.split_allocation(scope)
                calibrates = by is None or allocation == "owl"
                for refset in general if calibrates or registry.METHODS[by].reads_refset else general[:1]:
                    nm = registry.parse_scope(base)
                    compress += 1 if isinstance(nm, tuple) else sum(s > 0 for s in c["sparsities"])
                    scores |= {(model, by, refset)} if by is not None else set()
                    refsets |= {(model, refset)} if calibrates else set()
    s = config["structured"]
    structured = 0
    for model in stage_models("structured"):
        for method in s["methods"]:
            by = registry.STRUCTURED_METHODS[method]
            reads = method in registry.STRUCTURED_CALIBRATED or (by is not None and registry.METHODS[by].reads_refset)
            seeds = general if s["seeds"] is None else [f"general-s{seed}" for seed in s["seeds"]]
            for refset in seeds if reads else seeds[:1]:
                structured += len(s["ratios"])
                scores |= {(model, by, refset)} if by is not None else set()
                refsets |= {(model, refset)} if method in registry.STRUCTURED_CALIBRATED else set()
    ci = config["circuits"]
    circuits = 0
    for model in stage_models("circuits"):
        for method in ci["methods"]:
            for gran in ci["granularities"]:
                if method in registry.methods_for("circuits", gran):
                    circuits += len(ci["weight_scopes"]) if gran == "weight" else 1
                    scores |= {(model, method, refset) for refset in names("ioi")}
        if ci["ablation_value"] == "mean":
            refsets |= {(model, refset) for refset in names("ioi")}
    co = config["correction"]
    correction = 0
    for model in stage_models("correction"):
        for behaviour in co["behaviours"]:
            kind = registry.BEHAVIOURS[behaviour]
            side = co["general_refset"] if is_world(model) else "general"
            for method in co["methods"]:
                for gran in co["granularities"]:
                    if method in registry.methods_for("correction", gran):
                        correction += 1
                        scores |= {(model, method, names(side)[0]), (model, method, names(kind)[0])}
        correction += bool(co["aura"] and "toxicity" in co["behaviours"])
    scored_kinds = [r for kind in config["scores"]["refsets"] for r in names(kind)]
    scores |= {(m, method, r) for m in models for method in config["scores"]["methods"] for r in scored_kinds}
    export = c["export"]
    if export:
        by = registry.compression_methods()[export["method"]]
        scores |= {(m, by, general[0]) for m in compression_models} if by is not None else set()
        refsets |= {(m, general[0]) for m in compression_models} if by is None else set()
    refsets |= {(model, refset) for model, _, refset in scores}
    world_models = [m for m in models if config["models"][m]["source"] == "world"]
    expected = {
        "world_card": len(world_models),
        "world_card_table": int(bool(world_models)),
        "refset": len(refsets),
        "scores": len(scores),
        "compress": compress,
        "compress_dense": len(compression_models) if compress else 0,
        "compression_tables": int(bool(compress)),
        "export_pruned": len(compression_models) if export else 0,
        "structured": structured,
        "structured_speed": len(stage_models("structured")) if structured else 0,
        "structured_tables": int(bool(structured)),
        "circuit": circuits,
        "circuit_ablation": len(stage_models("circuits")) if circuits and ci["ablation"] else 0,
        "circuit_tables": int(bool(circuits)),
        "correction": correction,
        "correction_tables": int(bool(correction)),
        "all": 1,
    }
    return {rule: n for rule, n in expected.items() if n}


BOTH_CONFIGS = pytest.mark.parametrize(
    "configfile, n_models", [(DEFAULT_CONFIG, 2), (E2E_CONFIG, 1)], ids=["default", "e2e"]
)
WORLD_FULL = ROOT / "configs" / "world_full.yaml"


def test_lint(tmp_path):
    r = snakemake(tmp_path, DEFAULT_CONFIG, "--lint")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "configfiles, n_models",
    [((DEFAULT_CONFIG,), 2), ((DEFAULT_CONFIG, WORLD_FULL), 2), ((E2E_CONFIG,), 1)],
    ids=["default", "world_full", "e2e"],
)
def test_dry_run_default_target(tmp_path, configfiles, n_models):
    missing = [str(p) for p in COMMITTED_WORLD if not p.exists()]
    assert not missing, f"committed world files missing: {missing}"
    r = snakemake(tmp_path, *configfiles, "-n")
    assert r.returncode == 0, r.stdout + r.stderr
    config = workflow_config(*configfiles)
    assert len(config["models"]) == n_models
    assert job_counts(r.stdout + r.stderr) == expected_jobs(config)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    text = DEFAULT_CONFIG.read_text().replace("  threshold: 0.9\n", "  threshold: 0.9\n  threshold: 0.5\n", 1)
    bad = tmp_path / "twice.yaml"
    bad.write_text(text)
    line = text.splitlines().index("  threshold: 0.5") + 1
    r = snakemake(tmp_path, bad, "-n")
    assert r.returncode != 0
    assert f"{bad}:{line}: key 'threshold' is given twice in the same section" in r.stdout + r.stderr


def test_n_of_m_scopes_run_at_their_own_sparsity_only(tmp_path):
    """2:4 prunes exactly half of every group of 4: its runs are at 0.50 only, not at each
    configured sparsity (which would fail after the dry run had passed)."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["compression"].update(methods=["lrp", "sparsegpt"], scopes=["2:4"], method_scopes={})
    config["circuits"]["models"] = config["correction"]["models"] = []
    path = tmp_path / "nm.yaml"
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, path, "-n", "compression_tables")
    assert r.returncode == 0, r.stdout + r.stderr
    assert job_counts(r.stdout + r.stderr)["compress"] == 2 * 2 * 3  # models x methods x general seeds
    compress_outputs = [line for line in r.stdout.splitlines() if "sparsity_" in line and "output:" in line]
    assert compress_outputs and all("/2of4/" in line and "sparsity_0.50" in line for line in compress_outputs)


@BOTH_CONFIGS
def test_dry_run_world(tmp_path, configfile, n_models):
    r = snakemake(tmp_path, configfile, "-n", "world")
    assert r.returncode == 0, r.stdout + r.stderr
    assert job_counts(r.stdout + r.stderr) == {
        "world_corpus": 1,
        "world_tokenizer": 1,
        "world_train": n_models,
        "world_publish": 1,
        "world": 1,  # the target rule: input the published stamp
    }


def _typo(config):
    config["world"]["vocab_sise"] = config["world"].pop("vocab_size")


def _hub_without_revision(config):
    config["models"]["tinyllama"] = {"source": "hub", "hf_id": "TinyLlama/TinyLlama_v1.1"}


def _sparsity_one(config):
    config["compression"]["sparsities"] = [0.5, 1.0]


def _unknown_method(config):
    config["scores"]["methods"] = ["lrp", "snip"]


def _world_model_without_recipe(config):
    config["models"]["world-gpt2"] = {"source": "world"}


def _seqlen_beyond_world_context(config):
    config["compression"]["seqlen"] = 128


def _world_model_in_bf16(config):
    config["models"]["world-llama"]["dtype"] = "bfloat16"


def _world_model_spread(config):
    config["models"]["world-opt"]["device_map"] = "auto"


def _bad_dtype(config):
    config["models"]["world-llama"]["dtype"] = "fp16"


def _local_without_path(config):
    config["models"]["mine"] = {"source": "local", "data": "world"}


def _local_folder_without_config(config):
    config["models"]["mine"] = {"source": "local", "path": "/nonexistent/model"}


def _world_model_with_path(config):
    config["models"]["world-opt"]["path"] = "world/models/world-opt"


def _sparsegpt_global(config):
    config["compression"]["method_scopes"]["sparsegpt"] = ["global"]


def _owl_with_n_of_m(config):
    config["compression"]["scopes"] = ["row", "2:4_owl"]


def _export_n_of_m_at_another_sparsity(config):
    config["compression"]["export"] = {"method": "lrp", "scope": "2:4", "sparsity": 0.6}


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            _export_n_of_m_at_another_sparsity,
            "compression.export.sparsity: 0.6 with scope '2:4', which prunes exactly 0.5",
        ),
        (_local_without_path, "models.mine: source 'local' needs 'path'"),
        (_local_folder_without_config, "models.mine.path: no config.json in '/nonexistent/model'"),
        (_world_model_with_path, "models.world-opt: ['path'] do not apply to source 'world'"),
        (_typo, "world: unknown key 'vocab_sise'; allowed: card, models, scale, seed, vocab_size"),
        (_hub_without_revision, "models.tinyllama: source 'hub' needs 'revision'"),
        (_sparsity_one, "compression.sparsities.1: 1.0 is greater than or equal to the maximum of 1"),
        (_unknown_method, "scores.methods.1: 'snip' is not one of ['lrp', 'gradient', 'wanda'"),
        (_world_model_without_recipe, "models.world-gpt2: source 'world' needs a world model"),
        (_seqlen_beyond_world_context, "compression.seqlen: 128 exceeds world model world-llama's context (64 tokens"),
        (_world_model_in_bf16, "models.world-llama.dtype: 'bfloat16' for a world model; world models are CPU-sized"),
        (_world_model_spread, "models.world-opt.device_map: 'auto' for a world model"),
        (_bad_dtype, "models.world-llama.dtype: 'fp16' is not one of ['auto', 'bfloat16', 'float16', 'float32']"),
        (_sparsegpt_global, "compression.method_scopes.sparsegpt: sparsegpt prunes block by block: scope 'global'"),
        (_owl_with_n_of_m, "compression.scopes.1: '2:4_owl' does not match"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, mutate, expected):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    mutate(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "run"
    workdir.mkdir()
    # A real run, not -n: the point is that nothing starts.
    r = snakemake(workdir, bad)
    assert r.returncode != 0
    assert expected in r.stderr, r.stderr
    assert not any((workdir / d).exists() for d in ("results", "resources", "logs"))


@pytest.mark.slow
def test_full_run_of_the_tiny_config(tiny_run):
    """`snakemake world` retrains the tiny world into the work dir; the default target
    then measures the committed world's card, and both leave complete, valid outputs
    (the run: the `tiny_run` fixture, tests/e2e/conftest.py)."""
    tmp_path = tiny_run
    published = tmp_path / "world"
    assert (tmp_path / "resources" / "world" / "published.json").exists()
    assert (published / "models" / "world-llama" / "model.safetensors").exists()
    assert "IOI accuracy, held-out names" in (published / "CARD.md").read_text()
    # Every job ran in the run's fork server (none imported torch by itself): each log ends with
    # the usage of the server's child that ran it, and the benchmark files count that child.
    from attrprune.jobusage import parse_log

    logs = {p: p.read_text() for p in (tmp_path / "logs").rglob("*.log")}
    assert len(logs) > 20 and not [p for p, text in logs.items() if "running in this process" in text]
    assert not [p for p, text in logs.items() if parse_log(text) is None]
    compress = sorted((tmp_path / "benchmarks" / "results" / "world-llama" / "compression").rglob("sparsity_*.tsv"))
    for path in compress:
        header, row = path.read_text().splitlines()
        assert float(dict(zip(header.split("\t"), row.split("\t")))["max_rss"]) > 100, path
    assert compress
    card = yaml.safe_load((tmp_path / "results" / "world" / "world-llama" / "card.json").read_text())
    assert card["card"]["ioi_heldout_names"]["n"] == 16
    # the committed world-llama does IOI even on these 16 prompts
    assert card["card"]["ioi_heldout_names"]["accuracy"] >= 0.8
    from attrprune.relevance.store import load_scores

    scores, meta = load_scores(tmp_path / "results" / "world-llama" / "scores" / "lrp" / "ioi-s0.safetensors")
    assert meta["method"] == "lrp" and meta["n_samples"] == 8 and meta["refset_sha256"]
    assert "model.layers.0.mlp.down_proj" in scores.weights and scores.heads
    import pandas as pd

    tidy = pd.read_csv(tmp_path / "results" / "tables" / "compression.csv")
    # one model x {lrp, random, sparsegpt} x 2 sparsities x (world_ppl: 3 metrics + world_ioi:
    # acc + world_tokens: token_perplexity)
    assert len(tidy) == 3 * 2 * 5 and set(tidy.method) == {"lrp", "random", "sparsegpt"}
    assert set(tidy[tidy.metric == "token_perplexity"].task) == {"world_tokens"}
    # exact under int(s·n); the <= threshold of SparseGPT / RIA / magnitude per layer prunes one
    # weight more per group (4e-5 of the tiny world's layers)
    assert set(tidy.sparsity) == {0.0, 0.5} and (tidy.sparsity_measured - tidy.sparsity).abs().max() < 1e-4
    assert "| lrp |" in (tmp_path / "results" / "tables" / "compression.md").read_text()
    tables, plots = tmp_path / "results" / "tables", tmp_path / "results" / "plots"
    # every interpreted table also as HTML (what the report shows), every plot also as SVG
    for name in ("compression", "circuits", "correction", "correction_examples", "structured", "world_card"):
        assert "<table>" in (tables / f"{name}.html").read_text(), name
    for stage in ("compression", "circuits", "correction", "structured"):
        assert (plots / f"{stage}_world-llama.svg").read_text().lstrip().startswith("<?xml"), stage
    # no paper model in the tiny run: no comparison with the paper's table
    assert not (tables / "compression_paper.md").exists()
    # circuits: lrp and random x (weight global, head); lrp's circuit is smaller than random's,
    # its head ranking agrees with the exhaustive head ablation (64 sampled weights are too few
    # for a stable weight AUC), and every circuit keeps the threshold
    summary = pd.read_csv(tmp_path / "results" / "tables" / "circuits_summary.csv")
    assert len(summary) == 4 and set(summary.granularity) == {"weight", "head"}
    assert (summary.normalized_logit_diff >= summary.threshold - 1e-9).all()
    row = {(r.method, r.granularity): r for r in summary.itertuples()}
    assert row["lrp", "weight"].n_kept < row["random", "weight"].n_kept
    assert row["lrp", "head"].roc_auc >= 0.9 and row["lrp", "head"].roc_auc >= row["random", "head"].roc_auc
    circuit = tmp_path / "results" / "world-llama" / "circuits" / "ioi" / "lrp" / "head" / "global"
    assert all(
        (circuit / f).exists()
        for f in ("curve.json", "circuit.safetensors", "circuit.json", "circuit.png", "circuit.svg")
    )
    assert (tmp_path / "results" / "plots" / "circuits_world-llama.png").exists()
    table = (tmp_path / "results" / "tables" / "world_card.md").read_text()
    # In short says whether a model misses a target of the table below (the tiny world does)
    short, _, rows = table.partition("\n| metric | world-llama |")
    assert short.startswith("# World card\n\n## In short\n\n- ") and rows
    assert ("misses" in short) == ("(missed)" in rows) and ("meets all" in short) != ("(missed)" in rows)
    assert (tmp_path / "benchmarks" / "results" / "world" / "world-llama" / "card.tsv").exists()

    # Compression evaluates the dense model once and each pruned model in its own job, beside
    # lm-eval's own results: a lost (killed) sparsity and an added one rerun just those jobs.
    compression = tmp_path / "results" / "world-llama" / "compression"
    assert not list(compression.glob("*/*/*/sparsity_0.00"))
    assert json.loads((compression / "dense" / "metrics.json").read_text())["method"] is None
    pruner = json.loads(
        (compression / "sparsegpt" / "layer" / "general-s0" / "sparsity_0.50" / "metrics.json").read_text()
    )
    assert pruner["pruning"]["options"]["blocksize"] == 128 and pruner["sparsity_measured"] == pytest.approx(
        0.5, abs=1e-4
    )  # SparseGPT: <= per block
    lm_eval = json.loads((compression / "lrp" / "row" / "general-s0" / "sparsity_0.50" / "lm_eval.json").read_text())
    assert {"results", "configs", "versions", "n-shot", "config"} <= set(lm_eval) and "samples" not in lm_eval
    # A run killed during that job: its output is gone (Snakemake removes what a failed job
    # wrote), and so are the tables, which run last.
    # (The two files are put back afterwards, timestamps and all: the run is shared.)
    lost = [
        compression / "lrp" / "row" / "general-s0" / "sparsity_0.50" / "metrics.json",
        tmp_path / "results" / "tables" / "compression.csv",
    ]
    kept = tmp_path / "kept"
    kept.mkdir()
    for i, path in enumerate(lost):
        shutil.copy2(path, kept / str(i))
        path.unlink()
    try:
        r = snakemake(tmp_path, E2E_CONFIG, "-n")
        assert job_counts(r.stdout + r.stderr) == {"compress": 1, "compression_tables": 1, "all": 1}
        more = yaml.safe_load(E2E_CONFIG.read_text())
        more["compression"]["sparsities"] = [0.0, 0.3, 0.5]
        (kept / "more.yaml").write_text(yaml.safe_dump(more))
        r = snakemake(tmp_path, kept / "more.yaml", "-n")
        # 0.30 for lrp, random and sparsegpt, and the lost 0.50 of lrp; the dense model is not
        # evaluated again
        assert job_counts(r.stdout + r.stderr) == {"compress": 4, "compression_tables": 1, "all": 1}
    finally:
        for i, path in enumerate(lost):
            shutil.copy2(kept / str(i), path)
        shutil.rmtree(kept)


def test_dry_run_of_the_paper_preset(tmp_path):
    """configs/paper.yaml lists the paper's whole DAG without any network access: downloads
    are scheduled, not run, in a dry run."""
    r = snakemake(tmp_path, ROOT / "configs" / "paper.yaml", "-n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert job_counts(r.stdout + r.stderr) == {
        "download_model": 4,  # TinyLlama, Llama-2-7B, Llama-3-8B, OPT-125M
        "ioi_data": 2,  # OPT-125M reference + evaluation prompts
        "behaviour_prompts": 2,  # OPT-125M: toxic (RealToxicityPrompts) and repetition prompts
        # 3 compression models x 3 C4 seeds; OPT-125M: 6 IOI seeds, one C4, toxic, repetition set
        "refset": 3 * 3 + 6 + 3,
        # compression: (lrp, wanda for wanda_onepass) x 3 seeds + magnitude x 1, per model;
        # circuits: 5 methods x 6 seeds; correction: 4 methods x (general, toxic, repetition)
        "scores": 3 * (2 * 3 + 1) + 5 * 6 + 4 * 3 + 3 * 3,
        # runs x the 8 non-zero sparsities; runs: (lrp, wanda, wanda_onepass, sparsegpt) x 3
        # seeds + magnitude (per layer) x 1
        "compress": 3 * (4 * 3 + 1) * 8,
        "compress_dense": 3,
        "circuit": 3 * 4 + 2 + 2,
        "circuit_ablation": 1,
        "correction": 2 * 4 * 2 + 1,  # behaviours x methods x granularities, and AurA (toxicity neurons)
        "compression_tables": 1,
        "circuit_tables": 1,
        "correction_tables": 1,
        # 3 Llama models x 7 rankings (one C4 seed) x 2 ratios; their gradient, activation and
        # random scores add 3 x 3 to "scores" above
        "structured": 3 * 7 * 2,
        "structured_speed": 3,
        "structured_tables": 1,
        "all": 1,
    }


def test_dry_run_of_the_families_preset(tmp_path):
    """configs/families.yaml: compression on one current model of every family, offline dry run."""
    r = snakemake(tmp_path, ROOT / "configs" / "families.yaml", "-n", "-p")
    assert r.returncode == 0, r.stdout + r.stderr
    # 6 models: scores lrp x 3 C4 seeds + magnitude x 1; compress runs: (lrp, wanda) x 3 seeds
    # + magnitude (wanda is the sequential pruner: it reads the refsets, not scores)
    assert job_counts(r.stdout + r.stderr) == {
        "download_model": 6,
        "refset": 6 * 3,
        "scores": 6 * 4,
        "compress": 6 * 7 * 4,  # runs x the 4 non-zero sparsities
        "compress_dense": 6,
        "compression_tables": 1,
        "all": 1,
    }
    assert "--ppl-source wikitext2 --seqlen 1024" in r.stdout
    assert "--hf-id google/gemma-3-1b-pt --revision fcf18a2a879aab110ca39f8bffbccd5d49d8eb29" in r.stdout


def test_precision_placement_and_scorer_device_reach_the_commands(tmp_path):
    """models.<alias>.dtype / device_map become --dtype / --device-map of every model-loading
    job (world models: float32), correction.scorer_device reaches Detoxify (--scorer-device),
    and export-pruned gets the card's --base-model."""
    import shlex

    r = snakemake(tmp_path, ROOT / "configs" / "paper.yaml", "-n", "-p")
    assert r.returncode == 0, r.stdout + r.stderr
    commands = [shlex.split(line.split(" > ")[0]) for line in r.stdout.splitlines() if "python -m attrprune" in line]
    flags = {}
    for argv in commands:
        stage = argv[argv.index("attrprune") + 1]
        if stage in ("scores", "compress", "circuit", "circuit-ablation", "correction", "behaviour-prompts"):
            model = argv[argv.index("--model-dir") + 1].rsplit("/", 1)[-1]
            flags.setdefault(model, set()).add((argv[argv.index("--dtype") + 1], argv[argv.index("--device-map") + 1]))
        if "--scorer" in argv and argv[argv.index("--scorer") + 1] == "detoxify":
            assert argv[argv.index("--scorer-model-type") + 1] == "original"
            assert argv[argv.index("--scorer-device") + 1] == "auto"
    assert flags == {
        "tinyllama-1.1b": {("auto", "none")},
        "llama-2-7b": {("bfloat16", "none")},
        "llama-3-8b": {("bfloat16", "none")},
        "opt-125m": {("auto", "none")},
    }

    r = snakemake(tmp_path, DEFAULT_CONFIG, "-n", "-p")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in r.stdout.splitlines() if "python -m attrprune scores" in line]
    assert lines and all("--dtype float32 --device-map none" in line for line in lines)
    export = next(line for line in r.stdout.splitlines() if "attrprune export-pruned" in line)
    # the export keeps the checkpoint's own dtype (auto), whatever the model's dtype in the config
    assert "--base-model world-" in export and "--dtype auto " in export


def test_download_caches_wikitext2_for_hub_token_perplexity(tmp_path):
    """A hub model's compression measures token perplexity on WikiText-2's test split, so
    `snakemake download` caches wikitext2 even when download.datasets does not list it."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["models"]["tiny-hub"] = {"source": "hub", "hf_id": "org/tiny", "revision": "v1.0"}
    config["compression"]["models"] = ["tiny-hub"]
    config["compression"]["tasks"] = ["world_ppl"]
    config["compression"]["seqlen"] = 2048
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, path, "-n", "-p", "download")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "download-data --names wikitext2 " in r.stdout
    r = snakemake(
        tmp_path, path, "-n", "-p", "results/tiny-hub/compression/lrp/row/general-s0/sparsity_0.50/metrics.json"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "--ppl-source wikitext2 --seqlen 2048 " in r.stdout
    config["compression"]["ppl_source"] = "none"
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, path, "-n", "-p", "download")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "download-data" not in r.stdout
