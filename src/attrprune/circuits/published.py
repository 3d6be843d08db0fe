"""Circuits found by others, as data, and how well a method's head ranking recovers one.

``PUBLISHED`` holds each circuit by name: the (layer, head) pairs of every class of heads, and the
number of layers and heads per layer of the model it was found in. ``published_agreement`` scores
a ranking of every head of a model (the ``heads`` of a method's scores, ``{attention module:
[heads]}``) against one, treating membership in the circuit as the label:

* ``roc_auc``: the scores as a classifier of "in the published circuit" (Mann-Whitney form,
  ties counting one half; `attrprune.circuits.agreement.roc_auc`);
* ``recall`` and ``recall_by_class``: the share of the circuit's heads (of each class) among the
  k highest-scoring heads, k = the circuit's size unless given (then recall = precision). Heads
  tied at the cut count by their chance of being drawn into the top k.

Scores are ranked as given (higher = more important), as the circuit stage prunes by them.

Run: ``python -m attrprune.circuits.published`` lists the circuits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedCircuit:
    """The heads of a published circuit per class, and the shape of the model it belongs to."""

    model: str  # the model it was found in, in words
    source: str
    n_layers: int
    n_heads: int  # per layer
    classes: dict[str, tuple[tuple[int, int], ...]]  # class -> (layer, head) pairs

    def __post_init__(self):
        heads = [h for members in self.classes.values() for h in members]
        if len(set(heads)) != len(heads):
            raise ValueError(f"a head of the {self.model} circuit is listed in two classes")
        outside = [h for h in heads if not (0 <= h[0] < self.n_layers and 0 <= h[1] < self.n_heads)]
        if outside:
            raise ValueError(f"heads {outside} are outside {self.n_layers} layers x {self.n_heads} heads")
        if not heads:
            raise ValueError(f"the {self.model} circuit has no heads")

    @property
    def heads(self) -> list[tuple[int, int]]:
        return [h for members in self.classes.values() for h in members]


# Wang, Variengien, Conmy, Shlegeris & Steinhardt (2022), "Interpretability in the Wild: a
# Circuit for Indirect Object Identification in GPT-2 small", arXiv:2211.00593, final revision
# (ICLR 2023), Figure 2 and section 3: 26 heads in 7 classes, written layer.head in the paper.
# (The OpenReview submission's abstract counts 28; the final revision adds 9.0 as a backup name
# mover and drops 11.3.) The same lists as the IOI code of ACDC (Conmy et al. 2023).
GPT2_SMALL_IOI = PublishedCircuit(
    model="GPT-2 small",
    source="Wang et al. 2022, arXiv:2211.00593 (final revision), Fig. 2",
    n_layers=12,
    n_heads=12,
    classes={
        "name mover": ((9, 9), (9, 6), (10, 0)),
        "negative name mover": ((10, 7), (11, 10)),
        "s-inhibition": ((7, 3), (7, 9), (8, 6), (8, 10)),
        "induction": ((5, 5), (5, 8), (5, 9), (6, 9)),
        "duplicate token": ((0, 1), (0, 10), (3, 0)),
        "previous token": ((2, 2), (4, 11)),
        "backup name mover": ((9, 0), (9, 7), (10, 1), (10, 2), (10, 6), (10, 10), (11, 2), (11, 9)),
    },
)

PUBLISHED: dict[str, PublishedCircuit] = {"gpt2-small-ioi": GPT2_SMALL_IOI}


def published_circuit(name: str) -> PublishedCircuit:
    """The entry of a published circuit; an unknown name lists the valid ones."""
    if name not in PUBLISHED:
        raise ValueError(f"unknown published circuit {name!r}; valid: {', '.join(PUBLISHED)}")
    return PUBLISHED[name]


def _top_k_share(scores, k: int):
    """Per component, its chance of being among the k highest scores when ties are broken at
    random: 1 above the k-th score, 0 below, (free slots / tied) at it."""
    import torch

    kth = torch.sort(scores, descending=True).values[k - 1]
    above, tied = scores > kth, scores == kth
    slots = k - int(above.sum())
    return above.double() + tied.double() * slots / int(tied.sum())


def published_agreement(
    model,
    head_scores: dict,
    circuit_name: str = "gpt2-small-ioi",
    k: int | None = None,
    circuit: PublishedCircuit | None = None,
) -> dict:
    """ROC AUC and top-k recall (overall and per class) of `head_scores` ({attention module:
    [heads]}, every attention module of `model`) against the published circuit `circuit_name`,
    or against `circuit` when given (a circuit as data). k defaults to the circuit's size."""
    import torch

    from attrprune.architectures import architecture_of
    from attrprune.circuits.agreement import roc_auc
    from attrprune.circuits.components import component_names

    name = circuit_name if circuit is None else f"{circuit.model} (given)"
    circuit = circuit if circuit is not None else published_circuit(circuit_name)
    modules = component_names(model, "head")  # attention modules, in block order
    n_layers, n_heads = len(modules), architecture_of(model).n_heads(model)
    if (n_layers, n_heads) != (circuit.n_layers, circuit.n_heads):
        raise ValueError(
            f"circuit {name!r} is of {circuit.model} ({circuit.n_layers} layers x {circuit.n_heads} heads); "
            f"this {type(model).__name__} has {n_layers} layers x {n_heads} heads"
        )
    missing = [m for m in modules if m not in head_scores]
    if missing:
        raise ValueError(f"head scores lack attention modules {missing[:2]} (of {len(missing)}); score every head")
    wrong = [m for m in modules if tuple(head_scores[m].shape) != (n_heads,)]
    if wrong:
        raise ValueError(f"head scores of {wrong[0]} have shape {tuple(head_scores[wrong[0]].shape)}, not ({n_heads},)")
    scores = torch.stack(
        [head_scores[m].detach().double().cpu() for m in modules]
    ).flatten()  # [layers, heads] -> [layers*heads]
    if not torch.isfinite(scores).all():
        raise ValueError("head scores contain non-finite values")
    index = {
        cls: torch.tensor([layer * n_heads + head for layer, head in members])
        for cls, members in circuit.classes.items()
    }
    member = torch.zeros(len(scores), dtype=torch.bool)
    member[torch.cat(list(index.values()))] = True
    size = int(member.sum())
    k = size if k is None else k
    if not 1 <= k <= len(scores):
        raise ValueError(f"k must be between 1 and the {len(scores)} heads, got {k}")
    share = _top_k_share(scores, k)
    return {
        "circuit": name,
        "source": circuit.source,
        "n_components": len(scores),
        "n_circuit": size,
        "k": k,
        "roc_auc": roc_auc(scores, member),
        "recall": share[member].sum().item() / size,
        "precision": share[member].sum().item() / k,
        "recall_by_class": {cls: share[i].sum().item() / len(i) for cls, i in index.items()},
    }


if __name__ == "__main__":
    for key, c in PUBLISHED.items():
        print(f"{key}: {c.model}, {len(c.heads)} of {c.n_layers * c.n_heads} heads ({c.source})")
        for cls, members in c.classes.items():
            print(f"  {cls:20s} {', '.join(f'{layer}.{head}' for layer, head in members)}")
