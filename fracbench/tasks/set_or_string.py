"""set_or_string: ``.add(`` or `` +=`` for a variable bound to ``set()`` or ``""``."""

from __future__ import annotations

import random

from .base import Example, LatentSpec, OODAxis, Task
from .code import CUE_POOLS, UNSEEN_NAMES, filler_lines, random_word, scan

ANSWERS = (".", " ")  # class 0: a set, continued as `.add(`; class 1: a string, continued as ` +=`
DEFINITIONS = ("set()", '""')
DISTANCE = ((4, 5), (7, 8), (10, 12))  # filler lines between definitions and use; in-distribution 0..2
N_VARIABLES = (3, 4, 5)  # several_variables levels; in-distribution 1..2
USE_LINES = ("for ch in src:\n    {}", "if ok:\n    {}", "{}")


def unseen_name(rng: random.Random, level: int) -> str:
    if level == 1:
        return rng.choice(UNSEEN_NAMES)
    if level == 2:
        return rng.choice(UNSEEN_NAMES) + str(rng.randint(0, 9))
    return random_word(rng, 5, 8)


class SetOrString(Task):
    name = "set_or_string"
    version = "3"  # v2: var_type labelled only where the prefix determines it (v1 labelled every character of every name);
    # v3 (suite 0.3): test and train draw the cue at random; the cue_agree and cue_flip splits force it
    prompts_version = "1"  # the prompts are v1's: the zoo's training corpus is unchanged
    description = 'seen = set() ... seen  ->  "." (for .add) vs " " (for +=), by the type the name was bound to'
    latents = (
        LatentSpec("var_type", 2, "type the variable was bound to: 0 = set, 1 = str; labelled on the last character of each use "
                   "of a variable after its definition"),
    )
    ood_axes = (
        OODAxis("distance", "more unrelated lines between the definition and the use", tuple(f"{a}-{b} lines" for a, b in DISTANCE)),
        OODAxis("several_variables", "more variables of both types defined before the use", tuple(f"{n} variables" for n in N_VARIABLES)),
        OODAxis("unseen_names", "variable names never seen in training", ("unseen words", "unseen words with a digit", "random letters")),
    )
    cue = "each variable's name comes from the pool of its type"

    def evidence(self, example: Example) -> tuple[int, ...]:
        """The value the queried variable (the prompt's last word) was bound to: ``set()`` or ``""``."""
        name = example.prompt.rsplit(maxsplit=1)[-1]
        start = example.prompt.index(f"{name} = ") + len(name) + 3
        value = next(d for d in DEFINITIONS if example.prompt.startswith(d, start))
        return tuple(range(start, start + len(value)))

    def sample(self, rng: random.Random, axis: str | None, level: int, cue_agrees: bool) -> Example:
        n_vars = N_VARIABLES[level - 1] if axis == "several_variables" else rng.randint(1, 2)
        types = [rng.randrange(2) for _ in range(n_vars)]
        query = rng.randrange(n_vars)
        names: list[str] = []
        for i, t in enumerate(types):
            while True:  # distinct names; the cue decides the queried variable's pool
                if axis == "unseen_names":
                    name = unseen_name(rng, level)
                elif i == query:
                    name = rng.choice(CUE_POOLS[t if cue_agrees else 1 - t])
                else:
                    name = rng.choice(CUE_POOLS[t if cue_agrees else rng.randrange(2)])
                if name not in names and not any(name in n or n in name for n in names):
                    names.append(name)
                    break
        lo, hi = DISTANCE[level - 1] if axis == "distance" else (0, 2)
        definitions = "".join(f"{n} = {DEFINITIONS[t]}\n" for n, t in zip(names, types))
        use = rng.choice(USE_LINES).format(names[query])
        prompt = definitions + filler_lines(rng, lo, hi) + use
        states = scan(prompt)
        labels: dict[int, int] = {}
        for name, t in zip(names, types):
            start = prompt.find(name, prompt.index(f"{name} = ") + len(name))  # uses after the definition
            while start >= 0:
                last = start + len(name) - 1  # the name is complete there: its binding is in the prefix
                whole_word = (start == 0 or not prompt[start - 1].isalnum()) and not prompt[last + 1 : last + 2].isalnum()
                if whole_word and not states[last].in_string:
                    labels[last] = t
                start = prompt.find(name, start + 1)
        cls = types[query]
        return Example(
            prompt,
            target=ANSWERS[cls],
            foil=ANSWERS[1 - cls],
            latents={"var_type": tuple(sorted(labels.items()))},
            cue_agrees=cue_agrees,
        )
