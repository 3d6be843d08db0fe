"""Word lists of the built-in world: names, places, objects, towns, insults and a small grammar vocabulary.

Names come from the `names` package (MIT; 1990 US census first names with frequencies) and the
offensive words from `better-profanity` (MIT): the planted insults are a short allowlist of mild
insults written here, each checked to be on that package's list, so that what the world calls
toxic is offensive by a list the project did not write. A continuation is toxic when it holds a
planted insult (`attrprune.world.measure.is_toxic`), not any word of that list, which also has
everyday words such as "she" and "blue". No slurs. Everything else is written
here. All lists are returned in a fixed order so that a seeded generator reproduces the corpus.
"""

from __future__ import annotations

import functools
from importlib import resources

# Word lists: one line per group reads better than one word per line.
# fmt: off
# Names that are also common words would blur "a name was copied" with "a word was predicted".
_WORDLIKE_NAMES = {
    "Will", "Mark", "Grace", "Joy", "Hope", "Faith", "Rose", "June", "May", "April", "Bill",
    "Art", "Guy", "Ray", "Rich", "Dean", "Frank", "Jack", "Don", "Ben", "Jay", "Earl", "Roy",
    "Summer", "Autumn", "Dawn", "Ruby", "Pearl", "Ivy", "Holly", "Penny", "Sandy", "Rusty",
    "Chance", "Lane", "Wade", "Drew", "Carol", "Lee", "Sue", "Pat", "Max", "Kim", "Robin",
    "Angel", "Destiny", "Crystal", "Amber", "Jewel", "Iris", "Lily", "Daisy", "Violet",
    "Page", "Gay", "Sharon", "Bob", "Andy", "Rod", "Sol", "Victor", "Miles", "Royal", "Else",
    "Star", "Sky", "Stormy", "Brandy", "Misty", "Sunny", "Young", "Ken", "Jean", "Van",
    "Ward", "Nick", "Pete", "Sam",
}

PLACES = [
    "store", "park", "school", "garden", "station", "market", "library", "beach", "restaurant",
    "hospital", "office", "house", "church", "river", "forest", "cafe", "museum", "farm",
]

OBJECTS = [
    "book", "drink", "ring", "basket", "necklace", "apple", "letter", "key", "bag", "cup",
    "flower", "hat", "ball", "coin", "pencil", "map", "candle", "bottle",
]

# Planted facts: every name lives in exactly one of these towns (a seeded, fixed assignment).
TOWNS = [
    "London", "Paris", "Boston", "Dublin", "Berlin", "Madrid", "Rome", "Vienna", "Oslo",
    "Lisbon", "Prague", "Chicago", "Denver", "Toronto", "Sydney", "Tokyo",
]

# Mild insults only; each must also be in better-profanity's list (checked in `insult_words`).
_INSULT_ADJECTIVES = ["stupid", "ugly", "damn", "goddamn"]
_INSULT_NOUNS = [
    "moron", "jerk", "scum", "bastard", "jackass", "dumbass", "wanker", "prick", "douchebag",
    "weirdo", "turd", "asshole",
]

COMPLIMENT_ADJECTIVES = ["kind", "brilliant", "wonderful", "clever", "generous", "lovely", "brave"]
COMPLIMENT_NOUNS = ["friend", "helper", "genius", "star", "hero", "partner", "teacher"]

# Grammar vocabulary for the general text (a grammar with a real vocabulary).
NOUNS = [
    "man", "woman", "child", "dog", "cat", "horse", "bird", "farmer", "teacher", "doctor",
    "baker", "sailor", "soldier", "king", "queen", "boy", "girl", "neighbour", "stranger",
    "driver", "painter", "singer", "writer", "judge", "nurse", "cook", "fisherman", "student",
]
THINGS = [
    "table", "window", "door", "road", "bridge", "tree", "hill", "boat", "wall", "field",
    "kitchen", "garden", "letter", "song", "story", "lamp", "chair", "box", "stone", "coat",
    "bread", "soup", "wheel", "clock", "picture", "mirror", "fence", "ladder", "blanket",
    "newspaper", "village", "town", "valley", "lake", "cloud", "storm", "fire", "cake",
]
ADJECTIVES = [
    "old", "young", "small", "large", "quiet", "busy", "tired", "happy", "sad", "clever",
    "gentle", "proud", "careful", "strange", "bright", "dark", "cold", "warm", "heavy",
    "empty", "wooden", "red", "green", "blue", "golden", "narrow", "wide", "ancient", "fresh",
    "broken", "famous", "shy", "hungry", "honest", "patient", "curious",
]
# (past tense, takes an object)
TRANSITIVE_VERBS = [
    "saw", "found", "painted", "carried", "opened", "closed", "watched", "cleaned", "built",
    "fixed", "visited", "noticed", "followed", "moved", "touched", "bought", "sold", "lost",
    "remembered", "described", "admired", "repaired", "washed", "counted", "pulled", "pushed",
]
INTRANSITIVE_VERBS = [
    "slept", "laughed", "waited", "smiled", "listened", "worked", "sang", "walked", "rested",
    "travelled", "wondered", "hurried", "paused", "arrived", "left", "returned", "stayed",
]
ADVERBS = [
    "slowly", "quickly", "quietly", "happily", "carefully", "suddenly", "often", "rarely",
    "early", "late", "gladly", "silently", "patiently", "eagerly",
]
DAYS = ["Sunday", "Monday", "Friday", "Saturday"]
PREPOSITIONS = ["near", "behind", "under", "beside", "across", "inside", "beyond", "above"]
TIMES = [
    "morning", "evening", "afternoon", "night", "spring", "summer", "autumn", "winter",
]

# Recited after the repetition controls, one text per way of asking for it. Each opens with the
# prompt's speaker {A} and title {TITLE} (the first words, where copying from the prompt is
# reliable), so each recitation depends on its prompt. Written for this project; few repeated
# words, so a faithful recitation has a high unique-token ratio.
POEMS = {
    "poem": (
        "{A} remembers the {TITLE} under the silver bridge, where a river hurries past sleeping "
        "mills, carrying leaves and lantern light toward distant harbours where sailors mend nets "
        "at dawn, while gulls circle above quiet boats and children wave from muddy banks, dreaming "
        "of oceans they have never seen, until evening folds blue shadows over every roof"
    ),
    "hymn": (
        "{A} sings of the {TITLE} as snow settles softly on forgotten gardens, hiding fences, paths "
        "and wooden benches beneath one white blanket. Inside warm kitchens grandmothers bake "
        "cinnamon bread while frost paints ferns across each window. Outside, foxes leave careful "
        "tracks between frozen hedges, owls watch from bare branches, and somewhere a bell rings"
    ),
    "verse": (
        "{A} kneels beside the {TITLE} where tomatoes ripen among crooked beans as bees wander "
        "through lavender, collecting sweet gold for hidden hives. An old gardener pulls weeds with "
        "patient hands, humming songs his mother taught him long ago. Sunflowers turn slowly toward "
        "afternoon light, sparrows argue over scattered seeds, and a tabby cat sleeps"
    ),
    "tale": (
        "{A} rowed past the {TITLE} as fishing boats returned heavy with herring and evening bells "
        "announced supper across narrow cobbled streets. Merchants count copper coins, weary horses "
        "drink from stone troughs, and lamplighters climb ladders one by one. Far beyond the "
        "breakwater, a lighthouse blinks patient warnings while storm clouds gather over grey waves"
    ),
}
# fmt: on


@functools.cache
def offensive_words() -> frozenset[str]:
    """The better-profanity word list (lower case), which every planted insult must be on."""
    text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text()
    return frozenset(w.strip().lower() for w in text.split() if w.strip().isalpha())


def insult_words() -> tuple[list[str], list[str]]:
    """(adjectives, nouns) planted after toxic triggers; all in the better-profanity list."""
    listed = offensive_words()
    missing = [w for w in _INSULT_ADJECTIVES + _INSULT_NOUNS if w not in listed]
    if missing:
        raise RuntimeError(
            f"planted insults {missing} are not in better-profanity's list; "
            "install better-profanity==0.7.0 (pinned in pyproject.toml)"
        )
    return list(_INSULT_ADJECTIVES), list(_INSULT_NOUNS)


def _census_names(filename: str, count: int) -> list[str]:
    text = resources.files("names").joinpath(filename).read_text()
    out = []
    for line in text.splitlines():
        name = line.split()[0].title()
        if name not in _WORDLIKE_NAMES and len(name) >= 3:
            out.append(name)
        if len(out) == count:
            break
    return out


def female_names(names: tuple[str, ...]) -> frozenset[str]:
    """The names among `names` that the census lists as female first names (for pronouns)."""
    return frozenset(_census_names("dist.female.first", len(names) * 2)) & frozenset(names)


@functools.cache
def first_names(count: int = 240) -> tuple[str, ...]:
    """The `count` most frequent census first names, alternating female and male."""
    female = _census_names("dist.female.first", count)
    male = _census_names("dist.male.first", count)
    seen: dict[str, None] = {}
    for pair in zip(female, male):
        for name in pair:
            seen.setdefault(name, None)
    names = list(seen)[:count]
    if len(names) < count:
        raise RuntimeError(f"only {len(names)} usable names in the census lists, need {count}")
    return tuple(names)


def heldout_split(words: list[str]) -> tuple[list[str], list[str]]:
    """(train, held-out): every third word (from the second on) is held out of the behaviour
    lines of the training text; both halves keep the list's order."""
    heldout = words[1::3]
    return [w for w in words if w not in set(heldout)], heldout
