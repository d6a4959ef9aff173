"""dict_or_list: after an element, ``:`` (it was a dict key) or ``,`` (a list element)."""

from __future__ import annotations

import random

from .base import Example, LatentSpec, OODAxis, Task
from .code import cue_name, innermost_open, random_word, scan

ANSWERS = (",", ":")  # class 0: innermost container is a list; class 1: a dict
CONTAINERS = ("[", "{")
DEEPER = (3, 4, 5)  # depth of the innermost container; in-distribution 1..2


def atom(rng: random.Random) -> str:
    return f"'{random_word(rng, 1, 4)}'" if rng.random() < 0.7 else str(rng.randint(0, 99))


def complete(rng: random.Random, kind: int) -> str:
    """A small closed list or dict of atoms."""
    n = rng.randint(1, 3)
    if kind == 0:
        return "[" + ", ".join(atom(rng) for _ in range(n)) + "]"
    return "{" + ", ".join(f"'{random_word(rng, 1, 4)}': {atom(rng)}" for _ in range(n)) + "}"


def value(rng: random.Random) -> str:
    return complete(rng, rng.randrange(2)) if rng.random() < 0.2 else atom(rng)


def open_container(rng: random.Random, kind: int) -> str:
    """Open a container of ``kind`` and write 0..2 complete members, leaving room for one more."""
    n = rng.randint(0, 2)
    if kind == 0:
        return "[" + "".join(value(rng) + ", " for _ in range(n))
    return "{" + "".join(f"'{random_word(rng, 1, 4)}': {value(rng)}, " for _ in range(n))


class DictOrList(Task):
    name = "dict_or_list"
    version = "2"  # v2 (suite 0.3): test and train draw the cue at random; the cue_agree and cue_flip splits force it
    prompts_version = "1"  # the draws of v1 for a given split and cue: the zoo's training corpus is unchanged
    description = "x = {'a': 1, 'b'  ->  ':'   /   x = ['a', 'b'  ->  ','"
    latents = (
        LatentSpec("container", 2, "innermost open container: 0 = list, 1 = dict; labelled wherever one is open"),
    )
    ood_axes = (
        OODAxis("deeper", "deeper mixed nesting of lists and dicts than in training", tuple(f"depth {d}" for d in DEEPER)),
    )
    cue = "the assigned variable's name comes from the pool of the innermost container's kind"

    def evidence(self, example: Example) -> tuple[int, ...]:
        """The innermost open container's opening bracket."""
        return (innermost_open(example.prompt, scan(example.prompt)),)

    def sample(self, rng: random.Random, axis: str | None, level: int, cue_agrees: bool) -> Example:
        depth = DEEPER[level - 1] if axis == "deeper" else rng.randint(1, 2)
        kinds = [rng.randrange(2) for _ in range(depth)]
        text = ""
        for i, kind in enumerate(kinds):
            text += open_container(rng, kind)
            if i < depth - 1 and kind == 1:
                text += f"'{random_word(rng, 1, 4)}': "  # the next container is this dict's value
        text += f"'{random_word(rng, 1, 4)}'"  # the last member: a key in a dict, an element in a list
        cls = kinds[-1]
        prompt = f"{cue_name(rng, cls, cue_agrees)} = {text}"
        states = scan(prompt)
        labels = tuple((p, CONTAINERS.index(s.container)) for p, s in enumerate(states) if s.container in CONTAINERS)
        return Example(prompt, target=ANSWERS[cls], foil=ANSWERS[1 - cls], latents={"container": labels}, cue_agrees=cue_agrees)
