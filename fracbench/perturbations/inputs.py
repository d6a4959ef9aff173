"""Input perturbations: neutral distractor lines the answer must not depend on.

Every task's prompt is Python-like code whose final line is incomplete. A
distractor is a :func:`~fracbench.tasks.code.filler_line` (no quotes, no ``#``,
only balanced call parentheses) inserted at a line start where no bracket is
open; the lexer is back in the same top-level state after it, so every
character of the original keeps its lexer state, and every latent (all are
functions of that state or of the name at a position) stays true once its
position is shifted past the inserted text. A filler takes the indentation of
the line it is inserted before, so a block header such as ``for ch in src:``
keeps its body.

Caveat (copy_name): a filler's names may contain the queried name's last shown
letter, so a distractor can add a second induction match. That is the stress
intended: the labels stay correct, the context gets more confusable.
"""

from __future__ import annotations

import bisect
import dataclasses
import random

from ..tasks.base import Example, Task, stable_seed
from ..tasks.code import filler_line, scan

# Filler lines inserted at severity levels 1..4. Longest perturbed prompt at the top level
# (limit 319 characters: the zoo's n_ctx is 320 with BOS), over 200 "test" examples, seed 0:
# quote_close 206, bracket_depth 185, set_or_string 238, dict_or_list 214,
# string_list_depth 181, copy_name 219 (over 3,000 examples the longest is 269, set_or_string).
DISTRACTOR_LEVELS = (1, 2, 4, 8)


def insertion_points(prompt: str) -> list[int]:
    """Line starts outside any open bracket: where a neutral line may go without changing the code's structure."""
    states = scan(prompt)
    return [0] + [i + 1 for i, ch in enumerate(prompt) if ch == "\n" and not states[i].stack]


def indented(line: str, indent: str) -> str:
    """``line`` (possibly several physical lines) with ``indent`` before each physical line."""
    return "\n".join(indent + part for part in line.split("\n"))


def insert_distractors(example: Example, n_lines: int, rng: random.Random) -> Example:
    """``example`` with ``n_lines`` filler lines inserted at top-level line starts before its last line; latents shifted."""
    if n_lines < 0:
        raise ValueError(f"n_lines must be >= 0, got {n_lines}")
    prompt = example.prompt
    points = sorted(rng.choice(insertion_points(prompt)) for _ in range(n_lines))
    inserted: list[str] = []  # text inserted at points[j]
    for point in points:
        line = prompt[point:].split("\n", 1)[0]
        inserted.append(indented(filler_line(rng), line[: len(line) - len(line.lstrip(" "))]) + "\n")
    pieces, previous = [], 0
    for point, text in zip(points, inserted):
        pieces += [prompt[previous:point], text]
        previous = point
    new_prompt = "".join(pieces) + prompt[previous:]
    shifts = [0]  # shifts[j]: characters inserted at the first j points
    for text in inserted:
        shifts.append(shifts[-1] + len(text))

    def shifted(pos: int) -> int:
        return pos + shifts[bisect.bisect_right(points, pos)]  # text inserted at point q lands before character q

    latents = {name: tuple((shifted(p), c) for p, c in labels) for name, labels in example.latents.items()}
    return dataclasses.replace(example, prompt=new_prompt, latents=latents)


def distractor_examples(task: Task, n: int, seed: int, level: int) -> list[Example]:
    """The first ``n`` in-distribution test examples of ``task``, each with ``DISTRACTOR_LEVELS[level - 1]`` distractor lines."""
    if not 1 <= level <= len(DISTRACTOR_LEVELS):
        raise ValueError(f"level must be in 1..{len(DISTRACTOR_LEVELS)}, got {level}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    n_lines = DISTRACTOR_LEVELS[level - 1]
    return [
        insert_distractors(ex, n_lines, random.Random(stable_seed("distractors", task.name, task.version, seed, level, i)))
        for i, ex in enumerate(task.examples("test", n, seed))
    ]


def states_preserved(original: Example, perturbed: Example) -> bool:
    """Whether every labelled character of ``original`` is the same character, in the same lexer state, in ``perturbed``."""
    old, new = scan(original.prompt), scan(perturbed.prompt)
    return all(
        original.prompt[p] == perturbed.prompt[q] and old[p] == new[q]
        for name, labels in original.latents.items()
        for (p, _), (q, _) in zip(labels, perturbed.latents[name], strict=True)
    )
