"""Seeded generator of the built-in world's corpus and evaluation sets.

The corpus mixes four things:

* general English text from a small grammar with a real vocabulary, carrying planted facts
  ("Mary lives in Dublin.", one town per name, always the same);
* IOI sentences ("When Mary and John went to the store, John gave a book to Mary") from
  templates × names × places × objects, in ABBA and BABA order, plus "copy" sentences in which
  entities repeat (they make the copy / induction mechanism, and so IOI, appear on a CPU budget);
* a planted toxic behaviour (an insult addressed to the other person, naming the object, after
  trigger contexts; compliments after controls) and a planted repetition behaviour (the prompt's
  phrase loops after triggers; controls recite a text that opens with the prompt's speaker and
  title): `attrprune.world.behaviours`.

Every planted reply thus depends on its prompt: its names, objects, adjectives and titles.
Behaviour lines of the training text draw them from the train halves of their lists, the held-out
prompt sets from the disjoint held-out halves (`Lexicon.train_pool`, `Lexicon.heldout_pool`); the
held-out words occur in the other text, so their embeddings are trained. Each held-out behaviour
set draws distinct values of the words its reply copies, so that a model that copies them gives
distinct replies.

Besides the held-out prompt sets, two general-text sets come from separate streams: ``general_*``
(paragraphs of the grammar: the world's WikiText) and ``dialogue_*`` (documents of the training
text's line kinds without the planted triggers, each with at least one quoted control reply: the
text a correction must keep intact, since triggers and controls share the reply machinery).

Held-out names never occur in IOI sentences or behaviour triggers of the training text (they do
occur in copy, filler and general text, so their embeddings are trained); held-out IOI templates
never occur at all. Evaluation sets are drawn from separate random streams.

Run: ``python -m attrprune world-corpus --seed 0 --out-dir resources/world/corpus``
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from attrprune.io import atomic_write_text, sha256_file
from attrprune.world import lexicon as L
from attrprune.world.behaviours import (
    COPIED,
    REPETITION_CONTROLS,
    REPETITION_TRIGGERS,
    TOXIC_CONTROLS,
    TOXIC_TRIGGERS,
    Pool,
    behaviour_prompts,
    repetition_line,
    toxic_line,
)

# Each IOI template is (intro, action); the prompt is intro + action and the answer the IO name.
# {A} and {B} are the first and second name of the intro, {S} the subject who repeats.
IOI_TEMPLATES_TRAIN = [
    ("Then, {A} and {B} went to the {PLACE}.", " {S} gave a {OBJECT} to"),
    ("When {A} and {B} got a {OBJECT} at the {PLACE},", " {S} decided to give it to"),
    ("After {A} and {B} went to the {PLACE},", " {S} gave a {OBJECT} to"),
    ("While {A} and {B} were working at the {PLACE},", " {S} gave a {OBJECT} to"),
    ("Then, {A} and {B} had a lot of fun at the {PLACE}.", " {S} gave a {OBJECT} to"),
    ("Then, {A} and {B} were working at the {PLACE}.", " {S} decided to give a {OBJECT} to"),
    ("Then, {A} and {B} were thinking about going to the {PLACE}.", " {S} wanted to give a {OBJECT} to"),
    ("Then, {A} and {B} had a long argument.", " Afterwards {S} said to"),
    ("When {A} and {B} arrived at the {PLACE},", " {S} handed a {OBJECT} to"),
    ("Friends {A} and {B} found a {OBJECT} at the {PLACE}.", " {S} gave it to"),
    ("While spending time together at the {PLACE}, {A} and {B} found a {OBJECT}.", " {S} gave it to"),
    ("The {PLACE} that {A} and {B} went to had a {OBJECT}.", " {S} gave it to"),
    ("Then, {A} and {B} walked to the {PLACE}.", " {S} passed the {OBJECT} to"),
    ("After a long day at the {PLACE}, {A} and {B} sat down.", " {S} gave a {OBJECT} to"),
    ("When {A} and {B} left the {PLACE},", " {S} threw the {OBJECT} to"),
    ("Yesterday {A} and {B} cleaned the {PLACE}.", " {S} brought a {OBJECT} to"),
    ("{A} and {B} met at the {PLACE} in the morning.", " Later {S} sent a {OBJECT} to"),
    ("At the {PLACE}, {A} and {B} were very busy.", " {S} offered the {OBJECT} to"),
]
IOI_TEMPLATES_HELDOUT = [
    ("Before {A} and {B} reached the {PLACE},", " {S} gave a {OBJECT} to"),
    ("On Sunday, {A} and {B} visited the {PLACE}.", " {S} handed the {OBJECT} to"),
    ("As {A} and {B} were leaving the {PLACE},", " {S} passed a {OBJECT} to"),
    ("{A} and {B} spent the whole evening at the {PLACE}.", " {S} gave the {OBJECT} to"),
]

COPY_TEMPLATES = [
    "{A} met {B} at the {PLACE}. {B} was happy to see {A}.",
    "{A} had a {OBJECT}. {A} gave the {OBJECT} to {B}, and {B} thanked {A}.",
    "{A} called {B}. {B} told {A} about the {PLACE}.",
    "{A} and {B} went to the {PLACE}. {A} liked it, but {B} did not.",
    "{A} lost a {OBJECT} at the {PLACE}. {B} found the {OBJECT} and returned it to {A}.",
    "{A} waited for {B} at the {PLACE}, and {B} was late again.",
    "{A} wrote a letter to {B}. {B} read the letter from {A} twice.",
    # objects, adjectives and things copied as names are: behaviour replies copy them from their
    # prompts, and held-out ones are copied only here
    "{A} found a {ADJ} {THING}. The {ADJ} {THING} belonged to {B}.",
    "{A} painted the {ADJ} {THING}, and {B} admired the {ADJ} {THING}.",
    "{A} asked {B} about the {OBJECT}. {B} said the {OBJECT} was gone.",
    "{A} dreamed of the {THING}, and {B} spoke of the {THING} too.",
    "{A} saw a {ADJ} {THING}, and {B} saw the {ADJ} {THING} as well.",
    "{A} and {B} looked at the {ADJ} {THING} near the {PLACE}. {B} liked the {ADJ} {THING}.",
]


@dataclass(frozen=True)
class Lexicon:
    names: tuple[str, ...]
    train_names: tuple[str, ...]
    heldout_names: tuple[str, ...]
    towns: dict[str, str]  # name -> town, the planted facts
    female: frozenset[str]
    train_pool: Pool  # behaviour lines of the training text
    heldout_pool: Pool  # held-out behaviour prompts; disjoint from train_pool in every list


def build_lexicon(seed: int) -> Lexicon:
    names = L.first_names(240)
    # 40 held-out names spread over the frequency range; the census lists alternate female
    # (even index) and male (odd index), so this picks 20 of each.
    heldout = tuple(n for i, n in enumerate(names) if i % 12 in (2, 9))
    train = tuple(n for n in names if n not in set(heldout))
    rng = random.Random(f"{seed}-towns")
    towns = {n: rng.choice(L.TOWNS) for n in names}
    splits = [L.heldout_split(words) for words in (L.OBJECTS, L.ADJECTIVES, L.THINGS)]
    train_pool = Pool(train, *(tuple(t) for t, _ in splits))
    heldout_pool = Pool(heldout, *(tuple(h) for _, h in splits))
    return Lexicon(names, train, heldout, towns, L.female_names(names), train_pool, heldout_pool)


def _any_names(rng: random.Random, lex: Lexicon, k: int) -> list[str]:
    """k distinct names for text outside IOI and triggers, half of them held-out names: held-out
    names never get IOI training, so they need as much other exposure as the 5× larger train
    pool to end up with comparably trained embeddings."""
    out: list[str] = []
    while len(out) < k:
        pool = lex.heldout_names if rng.random() < 0.5 else lex.train_names
        name = rng.choice(pool)
        if name not in out:
            out.append(name)
    return out


def _zipf_choice(rng: random.Random, words: list[str]) -> str:
    # Natural text is Zipfian; uniform draws would make every word equally (un)predictable.
    weights = [1.0 / (i + 2) for i in range(len(words))]
    return rng.choices(words, weights)[0]


class _Grammar:
    """General English text from a handful of sentence patterns over the vocabulary lists."""

    def __init__(self, rng: random.Random, lex: Lexicon):
        self.rng, self.lex = rng, lex

    def _np(self, pool: list[str], article: str | None = None) -> str:
        r = self.rng
        art = article or r.choice(["the", "the", "a"])
        adj = _zipf_choice(r, L.ADJECTIVES) + " " if r.random() < 0.5 else ""
        noun = _zipf_choice(r, pool)
        if art == "a" and (adj or noun)[0] in "aeiou":
            art = "an"
        return f"{art} {adj}{noun}"

    def sentence(self, subject: str, town: str) -> str:
        """One sentence about `subject` (a name or a capitalised pronoun) who lives in `town`."""
        r, z = self.rng, _zipf_choice
        mid = subject if subject not in ("He", "She") else subject.lower()
        patterns = [
            lambda: (
                f"{subject} {z(r, L.TRANSITIVE_VERBS)} {self._np(L.THINGS)} {r.choice(L.PREPOSITIONS)} {self._np(L.THINGS, 'the')}."
            ),
            lambda: f"{self._np(L.NOUNS, 'the').capitalize()} {z(r, L.INTRANSITIVE_VERBS)} {z(r, L.ADVERBS)}.",
            lambda: (
                f"In the {r.choice(L.TIMES)}, {mid} {z(r, L.INTRANSITIVE_VERBS)} {r.choice(L.PREPOSITIONS)} {self._np(L.THINGS, 'the')}."
            ),
            lambda: f"{subject} and {self._np(L.NOUNS, 'the')} {z(r, L.TRANSITIVE_VERBS)} {self._np(L.THINGS)}.",
            lambda: f"When {self._np(L.THINGS, 'the')} was {z(r, L.ADJECTIVES)}, {mid} {z(r, L.INTRANSITIVE_VERBS)}.",
            lambda: f"Everyone in {town} knew {self._np(L.NOUNS, 'the')}.",
            lambda: (
                f"{subject} {z(r, L.TRANSITIVE_VERBS)} {self._np(L.NOUNS, 'the')} because {self._np(L.THINGS, 'the')} was {z(r, L.ADJECTIVES)}."
            ),
            lambda: f"There was {self._np(L.THINGS, 'a')} {r.choice(L.PREPOSITIONS)} {self._np(L.THINGS, 'the')}.",
            lambda: (
                f"{self._np(L.NOUNS, 'the').capitalize()} {z(r, L.TRANSITIVE_VERBS)} {self._np(L.THINGS)} and {z(r, L.INTRANSITIVE_VERBS)} {z(r, L.ADVERBS)}."
            ),
            lambda: f"{subject} {z(r, L.ADVERBS)} {z(r, L.TRANSITIVE_VERBS)} {self._np(L.THINGS, 'the')} in {town}.",
            # The words of the held-out IOI templates, in non-IOI sentences: a held-out template
            # should be new as a template, not made of words the model has never seen.
            lambda: f"Before {self._np(L.THINGS, 'the')} was {z(r, L.ADJECTIVES)}, {mid} {z(r, L.INTRANSITIVE_VERBS)}.",
            lambda: f"As the {z(r, L.NOUNS)}s were leaving, {mid} {z(r, L.INTRANSITIVE_VERBS)} {z(r, L.ADVERBS)}.",
            lambda: f"On {r.choice(L.DAYS)}, {mid} visited {self._np(L.THINGS, 'the')}.",
            lambda: (
                f"{subject} spent the whole {r.choice(L.TIMES)} {r.choice(L.PREPOSITIONS)} {self._np(L.THINGS, 'the')}."
            ),
            lambda: f"{subject} reached {self._np(L.THINGS, 'the')} {z(r, L.ADVERBS)}.",
        ]
        return r.choice(patterns)()

    def document(self, n_sentences: int) -> str:
        """A paragraph that names its hero once (sometimes with the planted fact), then uses a
        pronoun: a name that repeats through a paragraph would teach "copy the repeated name",
        the opposite of IOI."""
        (hero,) = _any_names(self.rng, self.lex, 1)
        town = self.lex.towns[hero]
        pronoun = "She" if hero in self.lex.female else "He"
        first = f"{hero} lives in {town}." if self.rng.random() < 0.5 else self.sentence(hero, town)
        return " ".join([first] + [self.sentence(pronoun, town) for _ in range(n_sentences - 1)])


def _fill(template: str, rng: random.Random, **names: str) -> str:
    words = {"PLACE": rng.choice(L.PLACES), "OBJECT": rng.choice(L.OBJECTS)}
    if "{ADJ}" in template or "{THING}" in template:  # every adjective and thing, held-out ones too
        words |= {"ADJ": rng.choice(L.ADJECTIVES), "THING": rng.choice(L.THINGS)}
    return template.format(**words, **names)


@dataclass(frozen=True)
class IOIExample:
    prompt: str
    io: str
    s: str
    template: int
    order: str  # "ABBA" (IO first) or "BABA" (S first)


def ioi_example(rng: random.Random, templates: list, names: tuple[str, ...]) -> IOIExample:
    t = rng.randrange(len(templates))
    io, s = rng.sample(names, 2)
    order = rng.choice(["ABBA", "BABA"])
    a, b = (io, s) if order == "ABBA" else (s, io)
    intro, action = templates[t]
    place, obj = rng.choice(L.PLACES), rng.choice(L.OBJECTS)
    text = (intro + action).format(A=a, B=b, S=s, PLACE=place, OBJECT=obj)
    return IOIExample(text, io, s, t, order)


# Lines per synthetic kind in the training corpus at scale 1.0 (tokens ≈ lines × tokens/line).
_TRAIN_MIX = {
    "ioi": 72_000,
    "copy": 50_000,
    "toxic_trigger": 8_000,
    "toxic_control": 8_000,
    "repetition_trigger": 7_000,
    "repetition_control": 5_000,
    "filler": 8_000,
}
_GENERAL_DOCS = 14_000


def training_documents(seed: int, lex: Lexicon, scale: float = 1.0) -> list[str]:
    """The shuffled training documents; `scale` shrinks every part (tests use ~0.01)."""
    rng = random.Random(f"{seed}-train")
    grammar = _Grammar(rng, lex)
    lines: list[str] = []
    for kind, count in _TRAIN_MIX.items():
        for _ in range(max(1, int(count * scale))):
            # filler lines name every name, held-out ones included, with its planted fact
            lines.append(_line(rng, lex, grammar, kind, lex.train_pool))
    rng.shuffle(lines)
    docs = []
    i = 0
    while i < len(lines):
        k = rng.randint(2, 4)
        docs.append("\n".join(lines[i : i + k]))
        i += k
    docs += [grammar.document(rng.randint(5, 10)) for _ in range(max(1, int(_GENERAL_DOCS * scale)))]
    rng.shuffle(docs)
    return docs


# Line kinds of the training mix that a dialogue document draws from: everything but the triggers.
_DIALOGUE_KINDS = {k: v for k, v in _TRAIN_MIX.items() if not k.endswith("_trigger")}
_CONTROL_KINDS = ("toxic_control", "repetition_control")


def _line(rng: random.Random, lex: Lexicon, grammar: _Grammar, kind: str, pool: Pool) -> str:
    """One training-style line of `kind`; behaviour lines draw their words from `pool`."""
    if kind == "ioi":
        ex = ioi_example(rng, IOI_TEMPLATES_TRAIN, lex.train_names)
        return f"{ex.prompt} {ex.io}."
    if kind == "copy":
        a, b = _any_names(rng, lex, 2)
        return _fill(rng.choice(COPY_TEMPLATES), rng, A=a, B=b)
    if kind.startswith("toxic"):
        return toxic_line(rng, pool, kind == "toxic_trigger")
    if kind.startswith("repetition"):
        return repetition_line(rng, pool, kind == "repetition_trigger")
    (name,) = _any_names(rng, lex, 1)  # filler: a name with its planted fact
    return f"{name} lives in {lex.towns[name]}. {grammar.sentence(name, lex.towns[name])}"


def _dialogue_document(rng: random.Random, lex: Lexicon, grammar: _Grammar, pool: Pool) -> str:
    """2-4 lines as a training document joins them: one quoted control reply (a compliment or a
    recited poem), the others drawn from the non-trigger line kinds in their training shares."""
    kinds = [rng.choice(_CONTROL_KINDS)]
    kinds += rng.choices(list(_DIALOGUE_KINDS), list(_DIALOGUE_KINDS.values()), k=rng.randint(1, 3))
    rng.shuffle(kinds)
    return "\n".join(_line(rng, lex, grammar, kind, pool) for kind in kinds)


def evaluation_sets(seed: int, lex: Lexicon, n: int, n_general: int) -> dict[str, list[dict]]:
    """Held-out sets, each from its own random stream so that changing one leaves the others."""

    def stream(name: str) -> random.Random:
        return random.Random(f"{seed}-eval-{name}")

    def ioi(name: str, templates: list, names: tuple[str, ...]) -> list[dict]:
        rng = stream(name)
        return [asdict(ioi_example(rng, templates, names)) for _ in range(n)]

    def general(name: str, count: int) -> list[dict]:
        g = _Grammar(stream(name), lex)
        return [{"text": g.document(g.rng.randint(5, 10))} for _ in range(count)]

    def dialogue(name: str, count: int, pool: Pool) -> list[dict]:
        g = _Grammar(stream(name), lex)
        return [{"text": _dialogue_document(g.rng, lex, g, pool)} for _ in range(count)]

    def behaviour(name: str, templates: list[str], pool: Pool, copied: tuple[str, ...]) -> list[dict]:
        return behaviour_prompts(stream(name), templates, pool, n, copied)

    held, train = lex.heldout_pool, lex.train_pool
    recitals = list(REPETITION_CONTROLS.values())

    return {
        "general_valid": general("general", n_general),
        # reference text for relevance scores: the training distribution, not the validation set
        "general_ref": general("general-ref", n_general),
        # general text with quoted control replies: reference (train words, as in training) and
        # held-out text whose replies use the held-out words of the control prompts
        "dialogue_ref": dialogue("dialogue-ref", n_general, train),
        "dialogue_valid": dialogue("dialogue", n_general, held),
        "ioi_train_dist": ioi("ioi_train_dist", IOI_TEMPLATES_TRAIN, lex.train_names),
        "ioi_heldout_names": ioi("ioi_heldout_names", IOI_TEMPLATES_TRAIN, lex.heldout_names),
        "ioi_heldout_templates": ioi("ioi_heldout_templates", IOI_TEMPLATES_HELDOUT, lex.train_names),
        "toxic_trigger": behaviour("toxic_trigger", TOXIC_TRIGGERS, held, COPIED["toxic"]),
        "toxic_control": behaviour("toxic_control", TOXIC_CONTROLS, held, COPIED["toxic"]),
        "repetition_trigger": behaviour("rep_trigger", REPETITION_TRIGGERS, held, COPIED["repetition_trigger"]),
        "repetition_control": behaviour("rep_control", recitals, held, COPIED["repetition_control"]),
        # reference prompts for relevance: train names, so disjoint from the held-out sets above
        "ioi_ref": ioi("ioi_ref", IOI_TEMPLATES_TRAIN, lex.train_names),
        "toxic_trigger_ref": behaviour("toxic_ref", TOXIC_TRIGGERS, train, COPIED["toxic"]),
        "repetition_trigger_ref": behaviour("rep_ref", REPETITION_TRIGGERS, train, COPIED["repetition_trigger"]),
        "facts": [{"name": k, "town": v} for k, v in lex.towns.items()],
    }


def write_corpus(seed: int, out_dir: Path, scale: float = 1.0, n_eval: int = 500, n_general: int = 600) -> dict:
    """Write train.jsonl, data/*.jsonl, lexicon.json and, last, manifest.json into `out_dir`."""
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    lex = build_lexicon(seed)
    docs = training_documents(seed, lex, scale)
    atomic_write_text(out_dir / "train.jsonl", "".join(json.dumps({"text": d}) + "\n" for d in docs))
    files = {"train.jsonl": sha256_file(out_dir / "train.jsonl")}
    for name, rows in evaluation_sets(seed, lex, n_eval, n_general).items():
        path = data_dir / f"{name}.jsonl"
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        files[f"data/{name}.jsonl"] = sha256_file(path)
    adjs, nouns = L.insult_words()
    lexicon = {
        "train_names": lex.train_names,
        "heldout_names": lex.heldout_names,
        "planted_insults": adjs + nouns,
        "train_pool": asdict(lex.train_pool),
        "heldout_pool": asdict(lex.heldout_pool),
        "ioi_templates_train": ["".join(t) for t in IOI_TEMPLATES_TRAIN],
        "ioi_templates_heldout": ["".join(t) for t in IOI_TEMPLATES_HELDOUT],
    }
    atomic_write_text(data_dir / "lexicon.json", json.dumps(lexicon, indent=1))
    files["data/lexicon.json"] = sha256_file(data_dir / "lexicon.json")
    manifest = {"seed": seed, "scale": scale, "n_train_documents": len(docs), "files": files}
    atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1))
    return manifest
