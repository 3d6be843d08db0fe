"""IOI prompts for a real model's tokenizer, in the style of Wang et al. (2022) and ACDC.

Each prompt names two people, repeats one of them (the subject S) and stops right before the
other (the indirect object IO): "Then, Mary and John went to the park. John gave a book to" → " Mary".
Order "ABBA" puts IO first in the intro, "BABA" puts S first; every file is balanced 50/50.
Rows are the world's IOI rows ({"prompt", "io", "s", "template", "order"}), so
`attrprune.refsets.ioi_refset` and `attrprune.world.measure.ioi_metrics` read them unchanged.

Only names that are one token after a space are used (the explained target is
logit(IO) − logit(S) at the last position). The names are split by a stable hash into a
"reference" half (what relevance is computed on) and an "evaluation" half (what circuits are
judged on), so no evaluation prompt contains a reference name; templates, places and objects are
shared. This module is independent of the built-in world: its word lists are written here.

Run: ``python -m attrprune ioi-data --model-dir MODEL --n 256 --seed 0 --split reference --out ioi_ref.jsonl``
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

SPLITS = ("reference", "evaluation")
ORDERS = ("ABBA", "BABA")
# Fewer names than this per split would make every prompt reuse the same few pairs.
MIN_NAMES = 8

# {A} and {B} are the intro's first and second name, {S} the subject who repeats. Every name
# follows a space, so the IO token in the context is the very token the last position should
# predict; every template ends with the word right before IO.
TEMPLATES = [
    "Then, {A} and {B} went to the {PLACE}. {S} gave a {OBJECT} to",
    "When {A} and {B} got to the {PLACE}, {S} handed a {OBJECT} to",
    "After lunch, {A} and {B} walked over to the {PLACE}. {S} passed a {OBJECT} to",
    "Yesterday, {A} and {B} waited at the {PLACE} for an hour. Then {S} gave a {OBJECT} to",
    "Early in the morning, {A} and {B} drove to the {PLACE}. {S} showed a {OBJECT} to",
    "While {A} and {B} were sitting in the {PLACE}, {S} lent a {OBJECT} to",
    "Last week, {A} and {B} visited the {PLACE}, and {S} bought a {OBJECT} for",
    "At the {PLACE}, {A} and {B} found an old {OBJECT}. {S} gave it to",
    "Once {A} and {B} reached the {PLACE}, {S} tossed the {OBJECT} to",
    "On Monday, {A} and {B} spent the afternoon at the {PLACE}. Later, {S} sold a {OBJECT} to",
    "After a busy day at the {PLACE}, {A} and {B} sat down to rest. {S} offered a {OBJECT} to",
    "One Saturday, {A} and {B} were cleaning the {PLACE} together. {S} threw a {OBJECT} to",
    "During a quiet evening at the {PLACE}, {A} and {B} talked for hours. Afterwards, {S} wrote a letter to",
    "As soon as {A} and {B} arrived at the {PLACE}, {S} returned the {OBJECT} to",
    "The {PLACE} was crowded when {A} and {B} got there, so {S} handed the {OBJECT} to",
    "Later that day, {A} and {B} left the {PLACE} together. {S} sent a {OBJECT} to",
]

PLACES = [
    "store",
    "park",
    "school",
    "station",
    "market",
    "library",
    "beach",
    "hospital",
    "office",
    "restaurant",
    "museum",
    "garden",
    "cinema",
    "bakery",
    "zoo",
    "airport",
    "gym",
    "farm",
    "bank",
    "church",
]

# Consonant-initial, since the templates say "a {OBJECT}".
OBJECTS = [
    "book",
    "drink",
    "key",
    "cup",
    "pen",
    "bag",
    "ring",
    "ball",
    "hat",
    "basket",
    "bottle",
    "candle",
    "map",
    "scarf",
    "toy",
    "watch",
    "coin",
    "necklace",
    "snack",
    "box",
]

# Common US first names; none is also an everyday word (Grace, Jack, Amber...) or a prefix of
# another one (Ann / Anna), so "the name was copied" is never confused with "a word was predicted".
NAMES = [
    "John",
    "James",
    "Michael",
    "Robert",
    "David",
    "William",
    "Richard",
    "Joseph",
    "Thomas",
    "Charles",
    "Christopher",
    "Daniel",
    "Matthew",
    "Anthony",
    "Paul",
    "Steven",
    "Andrew",
    "Kenneth",
    "Joshua",
    "Kevin",
    "Brian",
    "George",
    "Edward",
    "Ronald",
    "Timothy",
    "Jason",
    "Jeffrey",
    "Ryan",
    "Jacob",
    "Gary",
    "Eric",
    "Jonathan",
    "Stephen",
    "Larry",
    "Justin",
    "Scott",
    "Brandon",
    "Samuel",
    "Gregory",
    "Patrick",
    "Dennis",
    "Jerry",
    "Aaron",
    "Henry",
    "Adam",
    "Nathan",
    "Peter",
    "Kyle",
    "Walter",
    "Arthur",
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Nancy",
    "Lisa",
    "Betty",
    "Margaret",
    "Sandra",
    "Ashley",
    "Kimberly",
    "Emily",
    "Donna",
    "Michelle",
    "Dorothy",
    "Amanda",
    "Melissa",
    "Deborah",
    "Stephanie",
    "Rebecca",
    "Laura",
    "Helen",
    "Cynthia",
    "Kathleen",
    "Amy",
    "Shirley",
    "Angela",
    "Anna",
    "Brenda",
    "Pamela",
    "Nicole",
    "Katherine",
    "Christine",
    "Rachel",
    "Catherine",
    "Janet",
    "Maria",
    "Heather",
    "Diane",
    "Julie",
    "Victoria",
    "Kelly",
    "Alice",
    "Martha",
]


def _tokenizer_name(tokenizer) -> str:
    return getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__


def single_token_names(tokenizer, names: list[str] = NAMES, minimum: int = MIN_NAMES) -> list[str]:
    """The names (in their given order) that `tokenizer` encodes as one token after a space."""
    kept = [n for n in names if len(tokenizer.encode(" " + n, add_special_tokens=False)) == 1]
    if len(kept) < minimum:
        raise ValueError(
            f"tokenizer {_tokenizer_name(tokenizer)!r} encodes only {len(kept)} of {len(names)} names as a "
            f"single token after a space (need at least {minimum}); pass a name list that suits it (names=...)"
        )
    return kept


def name_split(name: str) -> str:
    """The split a name belongs to, from a hash of the name alone: the same for every
    tokenizer, and unchanged when other names are added to or removed from a list."""
    return SPLITS[hashlib.sha256(name.encode()).digest()[0] % len(SPLITS)]


def ioi_prompts(tokenizer, n: int, seed: int, split: str, names: list[str] = NAMES) -> list[dict]:
    """`n` distinct IOI rows of `split` for `tokenizer`, half ABBA and half BABA, drawn with `seed`."""
    if split not in SPLITS:
        raise ValueError(f"unknown IOI split {split!r}; valid: {list(SPLITS)}")
    if n < 1:
        raise ValueError(f"an IOI file needs at least one prompt, got n={n}")
    pool = [x for x in single_token_names(tokenizer, names, minimum=0) if name_split(x) == split]
    if len(pool) < MIN_NAMES:
        raise ValueError(
            f"only {len(pool)} single-token names of tokenizer {_tokenizer_name(tokenizer)!r} fall in the "
            f"{split} split (need at least {MIN_NAMES}); pass a longer name list (names=...)"
        )
    # Distinct prompts of one order: name pairs x the places and objects each template uses.
    pairs = len(pool) * (len(pool) - 1)
    per_order = sum(
        pairs * (len(PLACES) if "{PLACE}" in t else 1) * (len(OBJECTS) if "{OBJECT}" in t else 1) for t in TEMPLATES
    )
    if (n + 1) // 2 > per_order:
        raise ValueError(
            f"cannot draw {n} distinct {split} prompts: {len(pool)} names and {len(TEMPLATES)} templates make "
            f"{2 * per_order}; ask for fewer prompts or pass more names"
        )
    # The split is part of the seed so that the two splits do not share a sequence of
    # template / place / object choices for the same seed.
    rng = random.Random(f"ioi:{split}:{seed}")
    orders = [ORDERS[i % 2] for i in range(n)]
    rng.shuffle(orders)
    rows, seen = [], set()
    attempts = 0
    for order in orders:
        while True:
            attempts += 1
            if attempts > 100 * n:  # only when n is close to what the names and templates allow
                raise ValueError(
                    f"drew {attempts - 1} prompts without finding {n} distinct {split} ones ({2 * per_order} exist); "
                    "ask for fewer prompts or pass more names"
                )
            t = rng.randrange(len(TEMPLATES))
            io, s = rng.sample(pool, 2)
            a, b = (io, s) if order == "ABBA" else (s, io)
            prompt = TEMPLATES[t].format(A=a, B=b, S=s, PLACE=rng.choice(PLACES), OBJECT=rng.choice(OBJECTS))
            if prompt not in seen:
                break
        seen.add(prompt)
        rows.append({"prompt": prompt, "io": io, "s": s, "template": t, "order": order})
    return rows


def write_ioi_file(rows: list[dict], path: Path | str) -> None:
    """Rows as JSON lines, written atomically."""
    from attrprune.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def ioi_data(model_dir: Path, n: int, seed: int, split: str, out: Path) -> list[dict]:
    """Write `n` IOI prompts of `split` for the tokenizer in `model_dir` to `out`; return them."""
    from attrprune.models import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    rows = ioi_prompts(tokenizer, n, seed, split)
    write_ioi_file(rows, out)
    return rows
