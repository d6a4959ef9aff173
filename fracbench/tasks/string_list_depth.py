"""string_list_depth: bracket depth over a nested list of strings whose bodies hold brackets.

Compositional (Break It Down): the answer is bracket_depth's, but brackets inside
string literals do not count, so the model needs quote tracking (quote_close's
subroutine) and depth counting (bracket_depth's) at once.
"""

from __future__ import annotations

import random
import string

from .base import Example, LatentSpec, OODAxis, Task
from .bracket_depth import ANSWERS, MAX_DEPTH_LABEL, depth_plan
from .code import QUOTES, counted_brackets, cue_name, depth_labels, inside_string_labels, quote_type_labels, scan

BRACKETS_PER_STRING = (1, 2, 3)  # bracket_chars levels; in-distribution a string holds one with p = 0.3


def string_element(rng: random.Random, n_brackets: int) -> str:
    body = [rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 3))]
    for _ in range(n_brackets):
        body.insert(rng.randrange(len(body) + 1), rng.choice("[]"))
    q = rng.choice(QUOTES)
    return q + "".join(body) + q


class StringListDepth(Task):
    name = "string_list_depth"
    version = "2"  # v2 (suite 0.3): test and train draw the cue at random; the cue_agree and cue_flip splits force it
    prompts_version = "1"  # the draws of v1 for a given split and cue: the zoo's training corpus is unchanged
    description = "x = [['a]', 'b['], ['c']  ->  ']' vs newline, ignoring brackets inside strings"
    latents = (
        LatentSpec("depth", MAX_DEPTH_LABEL + 1, "open '[' outside strings after this character (clipped at 5); every position"),
        LatentSpec("inside_string", 2, "1 if a string literal is open after this character; every position"),
        LatentSpec("quote_type", 2, "quote that opened the enclosing string: 0 = ', 1 = \"; labelled inside strings"),
    )
    ood_axes = (
        OODAxis("bracket_chars", "every string holds bracket characters", tuple(f"{n} per string" for n in BRACKETS_PER_STRING)),
        OODAxis("deeper", "deeper nesting than the two levels seen in training", ("depth 3", "depth 4", "depth 5")),
    )
    cue = "the assigned variable's name comes from the pool of the answer"

    def evidence(self, example: Example) -> tuple[int, ...]:
        """Every bracket outside strings: the depth changes there and nowhere else."""
        return counted_brackets(example.prompt, scan(example.prompt))

    def sample(self, rng: random.Random, axis: str | None, level: int, cue_agrees: bool) -> Example:
        def element() -> str:
            n = BRACKETS_PER_STRING[level - 1] if axis == "bracket_chars" else int(rng.random() < 0.3)
            return string_element(rng, n)

        def closed_list(depth: int) -> str:
            items = [element() for _ in range(rng.randint(1, 2))]
            if depth > 1:
                items.insert(rng.randrange(len(items) + 1), closed_list(depth - 1))
            return "[" + ", ".join(items) + "]"

        cls = rng.randrange(2)
        max_depth, remaining = depth_plan(rng, cls, axis, level)
        text = "".join("[" + "".join(element() + ", " for _ in range(rng.randint(0, 1))) for _ in range(remaining))
        items = [element() for _ in range(rng.randint(1, 3))]
        if max_depth > remaining + 1:  # reach the full depth through a closed sub-list
            items.insert(rng.randrange(len(items) + 1), closed_list(max_depth - remaining - 1))
        prompt = f"{cue_name(rng, cls, cue_agrees)} = {text}[{', '.join(items)}]"
        states = scan(prompt)
        assert states[-1].depth == remaining, (prompt, remaining)
        return Example(
            prompt,
            target=ANSWERS[cls],
            foil=ANSWERS[1 - cls],
            latents={
                "depth": depth_labels(states, MAX_DEPTH_LABEL),
                "inside_string": inside_string_labels(states),
                "quote_type": quote_type_labels(states),
            },
            cue_agrees=cue_agrees,
        )
