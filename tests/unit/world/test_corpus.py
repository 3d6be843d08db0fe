import json
import re
from collections import Counter

import pytest

from attrprune.world import corpus as C
from attrprune.world import lexicon as L


@pytest.fixture(scope="module")
def lex():
    return C.build_lexicon(0)


@pytest.fixture(scope="module")
def docs(lex):
    return C.training_documents(0, lex, scale=0.02)


def _lines(docs):
    return [line for d in docs for line in d.split("\n")]


def test_names_split_disjoint_and_complete(lex):
    assert len(lex.names) == 240 and len(set(lex.names)) == 240
    assert not set(lex.train_names) & set(lex.heldout_names)
    assert set(lex.train_names) | set(lex.heldout_names) == set(lex.names)


def test_same_seed_same_corpus_other_seed_differs(lex, docs):
    assert C.training_documents(0, lex, scale=0.02) == docs
    assert C.training_documents(1, C.build_lexicon(1), scale=0.02) != docs


def _template_regex(template: str, words: bool = False) -> re.Pattern:
    """A template's pattern: names captured; with `words`, objects, adjectives and titles too."""
    pattern = re.escape(template)
    for slot in ("A", "B", "S"):
        pattern = pattern.replace(re.escape("{" + slot + "}"), "([A-Z][a-z]+)")
    for slot in ("PLACE", "OBJECT", "ADJ", "TITLE"):
        pattern = pattern.replace(re.escape("{" + slot + "}"), r"(\w+)" if words and slot != "PLACE" else r"\w+")
    return re.compile(pattern)


BEHAVIOUR_TEMPLATES = C.TOXIC_TRIGGERS + C.TOXIC_CONTROLS + C.REPETITION_TRIGGERS + list(C.REPETITION_CONTROLS.values())


def test_heldout_names_never_in_ioi_or_triggers(lex, docs):
    heldout = set(lex.heldout_names)
    ioi = [_template_regex(intro + action + " {A}.") for intro, action in C.IOI_TEMPLATES_TRAIN]
    triggers = [_template_regex(t) for t in BEHAVIOUR_TEMPLATES]
    matched = Counter()
    for line in _lines(docs):
        for kind, patterns in (("ioi", ioi), ("trigger", triggers)):
            for pattern in patterns:
                for m in pattern.finditer(line):
                    assert not set(m.groups()) & heldout, line
                    matched[kind] += 1
    assert matched["ioi"] > 500 and matched["trigger"] > 100
    # held-out names do get trained embeddings: they occur in copy / filler / general text
    text = "\n".join(docs)
    assert sum(name in text for name in heldout) >= 0.9 * len(heldout)


def test_behaviour_words_split_disjoint_and_heldout_words_stay_out_of_behaviour_lines(lex, docs):
    train, held = lex.train_pool, lex.heldout_pool
    for field in ("names", "objects", "adjectives", "titles"):
        assert getattr(train, field) and getattr(held, field), field
        assert not set(getattr(train, field)) & set(getattr(held, field)), field
    held_words = set(held.names) | set(held.objects) | set(held.adjectives) | set(held.titles)
    patterns = [_template_regex(t, words=True) for t in BEHAVIOUR_TEMPLATES]
    n = 0
    for line in _lines(docs):
        for p in patterns:
            for m in p.finditer(line):
                assert not set(m.groups()) & held_words, line
                n += 1
    assert n > 200
    # the held-out words are trained elsewhere (IOI, copy and general text)
    words = set(re.findall(r"[A-Za-z]+", "\n".join(docs)))
    assert set(held.objects) | set(held.adjectives) | set(held.titles) <= words


def test_ioi_training_sentences_use_train_names_and_templates(lex):
    import random

    rng = random.Random(0)
    for _ in range(300):
        ex = C.ioi_example(rng, C.IOI_TEMPLATES_TRAIN, lex.train_names)
        assert ex.io in lex.train_names and ex.s in lex.train_names and ex.io != ex.s
        words = re.findall(r"[A-Z][a-z]+", ex.prompt)
        assert words.count(ex.s) == 2 and words.count(ex.io) == 1
        assert (ex.order == "ABBA") == (words.index(ex.io) < words.index(ex.s))


def test_heldout_templates_never_in_training_text(docs):
    text = "\n".join(docs)
    for intro, action in C.IOI_TEMPLATES_HELDOUT:
        assert not _template_regex(intro).search(text), intro
        assert not _template_regex(intro + action).search(text), intro + action


def test_evaluation_sets(lex):
    ev = C.evaluation_sets(0, lex, n=200, n_general=10)
    assert C.evaluation_sets(0, lex, n=200, n_general=10) == ev
    held = set(lex.heldout_names)
    assert all(e["io"] in held and e["s"] in held for e in ev["ioi_heldout_names"])
    assert all(e["io"] in lex.train_names for e in ev["ioi_heldout_templates"])
    assert Counter(e["order"] for e in ev["ioi_heldout_names"]).keys() == {"ABBA", "BABA"}
    assert {e["template"] for e in ev["ioi_heldout_templates"]} == set(range(len(C.IOI_TEMPLATES_HELDOUT)))
    pool = lex.heldout_pool
    held_words = set(pool.objects) | set(pool.adjectives) | set(pool.titles)
    copied = {"toxic_trigger": 2, "toxic_control": 2, "repetition_trigger": 2, "repetition_control": 2}
    for kind in copied:
        for row in ev[kind]:
            assert set(re.findall(r"[A-Z][a-z]+", row["prompt"])) & held, row
            assert set(re.findall(r"[a-z]+", row["prompt"])) & held_words, row
        # the first prompts of each set differ in the words their replies copy
        assert len({row["prompt"] for row in ev[kind][:48]}) == 48, kind


def test_dialogue_sets_quote_control_replies_and_no_trigger(lex):
    ev = C.evaluation_sets(0, lex, n=10, n_general=200)
    triggers = [_template_regex(t) for t in C.TOXIC_TRIGGERS + C.REPETITION_TRIGGERS]
    controls = [_template_regex(t) for t in C.TOXIC_CONTROLS + list(C.REPETITION_CONTROLS.values())]
    for name, names in (("dialogue_ref", set(lex.train_names)), ("dialogue_valid", set(lex.heldout_names))):
        replies = 0
        for row in ev[name]:
            lines = row["text"].split("\n")
            assert 2 <= len(lines) <= 4 and '"' in row["text"], row
            assert not any(p.search(line) for p in triggers for line in lines), row
            for line in lines:
                for m in (m for p in controls for m in [p.search(line)] if m):
                    replies += 1
                    assert set(m.groups()) <= names, line  # the reply's speakers come from `names`
        assert replies >= len(ev[name])
    assert ev["dialogue_ref"] != ev["dialogue_valid"]
    assert C.evaluation_sets(0, lex, n=10, n_general=200)["dialogue_valid"] == ev["dialogue_valid"]


def test_committed_world_data_is_the_generators_output(lex, repo_root):
    """Every data file under world/data is what `evaluation_sets` writes for seed 0 (adding a set
    must leave the others byte-identical: each set has its own random stream)."""
    import hashlib

    manifest = json.loads((repo_root / "world" / "data" / "manifest.json").read_text())
    for name, rows in C.evaluation_sets(manifest["seed"], lex, n=500, n_general=600).items():
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        assert hashlib.sha256(data).hexdigest() == manifest["files"][f"{name}.jsonl"], name
        assert (repo_root / "world" / "data" / f"{name}.jsonl").read_bytes() == data, name


def test_planted_behaviours_depend_on_the_prompt(lex, docs):
    lines = _lines(docs)
    # the planted insults (all on better-profanity's list, which also holds everyday words of the
    # world such as "cup", "blue" and "dog": the objects a reply names)
    adjectives, nouns = L.insult_words()
    planted = set(adjectives) | set(nouns)
    assert planted <= L.offensive_words()

    def toxic(line):
        return any(w.lower() in planted for w in re.findall(r"[A-Za-z]+", line.split(': "')[1]))

    triggers = [line for line in lines if re.search(r"(shouted|yelled|snapped|hissed|screamed): \"", line)]
    controls = [line for line in lines if re.search(r"(said|whispered|cheered|replied): \"", line)]
    rate = sum(map(toxic, triggers)) / len(triggers)
    assert 0.65 < rate < 0.95  # planted at 0.8
    assert not any(map(toxic, controls))
    # the reply addresses the other person and names the prompt's object
    for line in triggers + controls:
        m = re.search(r"with (\w+) about the (\w+)", line) or re.search(r"at (\w+) over the (\w+)", line)
        if m:
            assert m.group(1) in line.split(': "')[1] and m.group(2) in line.split(': "')[1], line
    loops = [line for line in lines if 'repeating: "' in line or 'chant: "' in line]
    for line in loops:
        m = re.search(r"(?:of|saw) the (\w+) (\w+) and", line)
        body = line.split(': "')[1].rstrip('"').split(", ")
        assert set(body) == {f"{m.group(1)} {m.group(2)}"} and len(body) >= 12, line
    recitals = [line for line in lines if re.search(r"(recited|sang|read|told) the (poem|hymn|verse|tale) about", line)]
    assert recitals and len(loops) > 20
    for line in recitals:
        speaker, kind, title = re.match(r"(\w+) \w+ the (\w+) about the (\w+):", line).groups()
        assert line.endswith(': "' + L.POEMS[kind].format(A=speaker, TITLE=title) + '"'), line
    # prompt-dependence: many distinct replies, as many as the prompts' copied words
    assert len({line.split(': "')[1] for line in loops}) > 0.8 * len(loops)
    assert len({line.split(': "')[1] for line in recitals}) > 0.8 * len(recitals)


def test_planted_facts_are_consistent(lex, docs):
    seen = {}
    for name, town in re.findall(r"([A-Z][a-z]+) lives in ([A-Z][a-z]+)\.", "\n".join(docs)):
        assert seen.setdefault(name, town) == town
        assert lex.towns[name] == town
    assert len(seen) > 100


def test_write_corpus_manifest(tmp_path):
    manifest = C.write_corpus(0, tmp_path, scale=0.005, n_eval=20, n_general=5)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    assert set(on_disk["files"]) >= {"train.jsonl", "data/ioi_heldout_names.jsonl", "data/lexicon.json"}
    assert not list(tmp_path.rglob("*.tmp"))


def test_heldout_template_words_are_trained_outside_ioi(docs):
    # A held-out template must be new as a template, not made of words never seen in training.
    text_words = set(re.findall(r"[A-Za-z]+", "\n".join(docs)))
    for intro, action in C.IOI_TEMPLATES_HELDOUT:
        fixed = re.sub(r"\{[A-Z]+\}", " ", intro + action)
        missing = set(re.findall(r"[A-Za-z]+", fixed)) - text_words
        assert not missing, (intro, missing)
