"""bracket_depth: after a ``]``, is the nested list still open (``]``) or finished (newline)?

The character-level form of Gao et al.'s ``]`` vs ``]]`` task: the prompt ends just
after a closing bracket, and the next character is ``]`` when brackets are still
open, a newline when the literal is complete.
"""

from __future__ import annotations

import random

from .base import Example, LatentSpec, OODAxis, Task
from .code import counted_brackets, cue_name, depth_labels, filler_line, random_word, scan

ANSWERS = ("\n", "]")  # class 0: the literal is complete; class 1: still open
MAX_DEPTH_LABEL = 5  # depth labels are clipped here
LONG_LIST = ((8, 12), (16, 24), (32, 40))  # long_list levels: elements in the list just closed


def complete_list(rng: random.Random, depth: int, n_lo: int = 1, n_hi: int = 3) -> str:
    """A closed list literal whose nesting is exactly ``depth``."""
    items = [str(rng.randint(0, 9)) for _ in range(rng.randint(n_lo, n_hi))]
    if depth > 1:
        items.insert(rng.randrange(len(items) + 1), complete_list(rng, depth - 1, 1, 2))
    return "[" + ", ".join(items) + "]"


def elements(rng: random.Random, n: int, max_sub_depth: int) -> list[str]:
    """``n`` list elements: digits, with complete sub-lists up to ``max_sub_depth`` mixed in."""
    out = [str(rng.randint(0, 9)) for _ in range(n)]
    if max_sub_depth > 0 and rng.random() < 0.5:
        out[rng.randrange(n)] = complete_list(rng, rng.randint(1, max_sub_depth))
    return out


def nested_list_prompt(rng: random.Random, remaining: int, max_depth: int, n_lo: int, n_hi: int, must_reach: bool) -> str:
    """Text opening ``remaining + 1`` lists and closing the innermost: afterwards ``remaining`` are open.

    The literal's deepest nesting is ``max_depth`` when ``must_reach`` (enforced through a
    complete sub-list in the innermost list).
    """
    text = ""
    for _ in range(remaining):  # the outer lists that stay open, each maybe after complete siblings
        siblings = elements(rng, rng.randint(0, 2), 0) if rng.random() < 0.5 else []
        text += "[" + "".join(s + ", " for s in siblings)
    inner_depth = remaining + 1
    sub_depth = max_depth - inner_depth  # how deep a complete sub-list inside the innermost list may go
    items = elements(rng, rng.randint(n_lo, n_hi), sub_depth)
    if must_reach and sub_depth > 0:
        items[rng.randrange(len(items))] = complete_list(rng, sub_depth)
    return text + "[" + ", ".join(items) + "]"


def depth_plan(rng: random.Random, cls: int, axis: str | None, level: int) -> tuple[int, int]:
    """(deepest nesting, brackets still open after the prompt) for answer class ``cls``:
    in distribution the deepest nesting is 1 or 2 (2 when brackets must stay open), on the
    ``deeper`` axis it is level + 2."""
    max_depth = level + 2 if axis == "deeper" else rng.randint(1 + cls, 2)
    return max_depth, rng.randint(1, max_depth - 1) if cls else 0


class BracketDepth(Task):
    name = "bracket_depth"
    version = "2"  # v2 (suite 0.3): test and train draw the cue at random; the cue_agree and cue_flip splits force it
    prompts_version = "1"  # the draws of v1 for a given split and cue: the zoo's training corpus is unchanged
    description = "x = [[1, 2], [3]  ->  ']' (still open) vs newline (complete)"
    latents = (
        LatentSpec("depth", MAX_DEPTH_LABEL + 1, "open '[' outside strings and comments after this character (clipped at 5); every position"),
    )
    ood_axes = (
        OODAxis("deeper", "deeper nesting than the two levels seen in training", ("depth 3", "depth 4", "depth 5")),
        OODAxis("long_list", "the list just closed is very long, diluting the depth signal (Gao et al.)", tuple(f"{a}-{b} elements" for a, b in LONG_LIST)),
        OODAxis("comment_bracket", "unmatched '[' inside comments before the list (Gao et al.'s attack)", ("1 comment '['", "2 comment '['", "3 comment '['")),
    )
    cue = "the assigned variable's name comes from the pool of the answer"

    def evidence(self, example: Example) -> tuple[int, ...]:
        """Every bracket outside comments: the depth changes there and nowhere else."""
        return counted_brackets(example.prompt, scan(example.prompt))

    def sample(self, rng: random.Random, axis: str | None, level: int, cue_agrees: bool) -> Example:
        cls = rng.randrange(2)
        max_depth, remaining = depth_plan(rng, cls, axis, level)
        n_lo, n_hi = LONG_LIST[level - 1] if axis == "long_list" else (1, 4)
        literal = nested_list_prompt(rng, remaining, max_depth, n_lo, n_hi, must_reach=True)
        prefix = filler_line(rng) + "\n" if rng.random() < 0.3 else ""
        if axis == "comment_bracket":
            prefix += "".join(f"# {random_word(rng, 2, 5)} [{random_word(rng, 1, 4)}\n" for _ in range(level))
        elif rng.random() < 0.3:
            prefix += f"# {random_word(rng, 2, 5)} {random_word(rng, 1, 4)}\n"
        prompt = f"{prefix}{cue_name(rng, cls, cue_agrees)} = {literal}"
        states = scan(prompt)
        assert states[-1].depth == remaining, (prompt, remaining)
        return Example(
            prompt,
            target=ANSWERS[cls],
            foil=ANSWERS[1 - cls],
            latents={"depth": depth_labels(states, MAX_DEPTH_LABEL)},
            cue_agrees=cue_agrees,
        )
