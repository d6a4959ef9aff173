"""copy_name: induction. A name defined earlier must be repeated, character by character."""

from __future__ import annotations

import random
import string

from .base import Example, LatentSpec, OODAxis, Task
from .code import filler_lines, random_word

DISTANCE = ((4, 5), (7, 8), (10, 12))  # filler lines between the definitions and the use; in-distribution 0..2
N_NAMES = (3, 4, 6)  # more_names levels; in-distribution 2
MAX_NAMES = max(N_NAMES)


def distinct_names(rng: random.Random, n_names: int) -> list[str]:
    """``n_names`` names of 4-6 random letters with distinct two-letter prefixes."""
    while True:
        names = [random_word(rng, 4, 6) for _ in range(n_names)]
        if len({n[:2] for n in names}) == n_names:
            return names


class CopyName(Task):
    name = "copy_name"
    version = "2"  # v2 (suite 0.3): test and train draw the cue at random; the cue_agree and cue_flip splits force it
    prompts_version = "1"  # the draws of v1 for a given split and cue: the zoo's training corpus is unchanged
    description = "qzvk = 1 ... print(qz  ->  'v': complete a name defined earlier (the foil continues another name)"
    latents = (
        LatentSpec("source", MAX_NAMES, "index of the definition the query copies from; labelled on the query's characters"),
        LatentSpec("next_char", 26, "the letter that follows in the copied name (a = 0); labelled on the query's characters"),
    )
    ood_axes = (
        OODAxis("distance", "more unrelated lines between the definitions and the use", tuple(f"{a}-{b} lines" for a, b in DISTANCE)),
        OODAxis("more_names", "more names defined, one of them queried", tuple(f"{n} names" for n in N_NAMES)),
    )
    cue = "the queried name is the one defined last"

    def evidence(self, example: Example) -> tuple[int, ...]:
        """The queried name's definition: the characters the query repeats and the one it copies next."""
        prefix = example.prompt.rsplit("print(", 1)[1]
        start = next(i for i in range(len(example.prompt)) if (i == 0 or example.prompt[i - 1] == "\n")
                     and example.prompt.startswith(prefix, i))
        return tuple(range(start, start + len(prefix) + 1))

    def sample(self, rng: random.Random, axis: str | None, level: int, cue_agrees: bool) -> Example:
        n_names = N_NAMES[level - 1] if axis == "more_names" else 2
        k = rng.randint(2, 3)  # characters of the query already written
        query = n_names - 1 if cue_agrees else rng.randrange(n_names - 1)
        lo, hi = DISTANCE[level - 1] if axis == "distance" else (0, 2)
        while True:  # the query's last shown letter occurs once before the query: one induction step decides
            names = distinct_names(rng, n_names)
            context = "".join(f"{n} = {rng.randint(0, 9)}\n" for n in names) + filler_lines(rng, lo, hi) + "print("
            if context.count(names[query][k - 1]) == 1:
                break
        target = names[query][k]
        foils = [n[k] for i, n in enumerate(names) if i != query and n[k] != target]
        foil = rng.choice(foils) if foils else rng.choice([c for c in string.ascii_lowercase if c != target])
        prompt = context + names[query][:k]
        start = len(prompt) - k
        return Example(
            prompt,
            target=target,
            foil=foil,
            latents={
                "source": tuple((start + i, query) for i in range(k)),
                "next_char": tuple((start + i, ord(names[query][i + 1]) - ord("a")) for i in range(k)),
            },
            cue_agrees=cue_agrees,
        )
