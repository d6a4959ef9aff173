"""Shared pieces of Python-like code: a tiny lexer for ground truth, names, filler lines."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

QUOTES = ("'", '"')
OPENERS = {"[": "]", "{": "}", "(": ")"}
CLOSERS = {v: k for k, v in OPENERS.items()}


@dataclass(frozen=True)
class CharState:
    """Lexer state *after* reading one character."""

    in_string: bool  # a string literal is open
    quote: str | None  # its opening quote
    in_comment: bool  # inside a '#' comment
    stack: tuple[str, ...]  # open brackets outside strings and comments, innermost last

    @property
    def depth(self) -> int:
        return sum(1 for b in self.stack if b == "[")

    @property
    def container(self) -> str | None:
        return self.stack[-1] if self.stack else None


def scan(text: str) -> list[CharState]:
    """Per-character lexer states of ``text``: the ground truth every task labels from.

    Strings have no escapes (the generators never write a backslash); comments
    run to the end of the line; brackets count only outside strings and comments.
    """
    states: list[CharState] = []
    quote: str | None = None
    comment = False
    stack: list[str] = []
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote is not None:
            if ch == quote:
                quote = None
            elif ch == "\n":
                raise ValueError(f"unterminated string at a newline in {text!r}")
        elif ch in QUOTES:
            quote = ch
        elif ch == "#":
            comment = True
        elif ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS:
            assert stack and stack[-1] == CLOSERS[ch], f"unbalanced {ch!r} in {text!r}"
            stack.pop()
        states.append(CharState(quote is not None, quote, comment, tuple(stack)))
    return states


def counted_brackets(text: str, states: list[CharState]) -> tuple[int, ...]:
    """Positions of the square brackets that count: outside strings and comments (every change of the depth)."""
    return tuple(p for p, (ch, s) in enumerate(zip(text, states)) if ch in "[]" and not s.in_string and not s.in_comment)


def open_string_start(text: str, states: list[CharState]) -> int:
    """Position of the quote that opened the string still open at the end of ``text``."""
    assert states[-1].in_string, f"no string is open at the end of {text!r}"
    return max(p for p, s in enumerate(states) if s.in_string and (p == 0 or not states[p - 1].in_string))


def innermost_open(text: str, states: list[CharState]) -> int:
    """Position of the innermost bracket (any kind) still open at the end of ``text``."""
    stack: list[int] = []
    for p, (ch, s) in enumerate(zip(text, states)):
        if s.in_string or s.in_comment:
            continue
        if ch in OPENERS:
            stack.append(p)
        elif ch in CLOSERS:
            stack.pop()
    assert stack, f"no bracket is open at the end of {text!r}"
    return stack[-1]


def depth_labels(states: list[CharState], clip: int) -> tuple[tuple[int, int], ...]:
    """(position, open '[' count clipped at ``clip``) at every position."""
    return tuple((p, min(s.depth, clip)) for p, s in enumerate(states))


def inside_string_labels(states: list[CharState]) -> tuple[tuple[int, int], ...]:
    """(position, 1 if a string is open) at every position."""
    return tuple((p, int(s.in_string)) for p, s in enumerate(states))


def quote_type_labels(states: list[CharState]) -> tuple[tuple[int, int], ...]:
    """(position, index of the opening quote in QUOTES) at every position inside a string."""
    return tuple((p, QUOTES.index(s.quote)) for p, s in enumerate(states) if s.in_string)


# Variable names. The two cue pools carry the spurious surface cue: in-distribution a
# task draws the name from the pool of its answer class. UNSEEN names never occur in any
# split but the unseen-name OOD levels.
CUE_POOLS = (
    ("data", "items", "seen", "keys", "tags", "nodes", "found", "used", "ids", "pairs"),
    ("text", "msg", "line", "word", "out", "buf", "name", "path", "head", "body"),
)
UNSEEN_NAMES = ("acc", "rows", "memo", "cache", "pool", "bag", "stash", "heap", "bin", "log")
FILLER_NAMES = ("n", "i", "j", "k", "m", "total", "count", "step", "size", "idx")


def cue_name(rng: random.Random, answer_class: int, cue_agrees: bool) -> str:
    """A variable name whose pool agrees with ``answer_class`` when ``cue_agrees``, else the other pool."""
    pool = CUE_POOLS[answer_class if cue_agrees else 1 - answer_class]
    return rng.choice(pool)


def random_word(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(lo, hi)))


def filler_line(rng: random.Random) -> str:
    """A line of neutral code: no quotes, brackets of any kind but calls, or containers."""
    a, b = rng.sample(FILLER_NAMES, 2)
    k = rng.randint(0, 9)
    return rng.choice(
        (
            f"{a} = {k}",
            f"{a} = {b} + {k}",
            f"{a} += {k}",
            f"{a} = {b} * {k}",
            f"print({a})",
            f"{a} = max({a}, {b})",
            f"if {a} > {k}:\n    {b} = {a}",
            f"{a} = {b} - 1",
        )
    )


def filler_lines(rng: random.Random, lo: int, hi: int) -> str:
    """``lo``..``hi`` filler lines, each ending in a newline."""
    return "".join(filler_line(rng) + "\n" for _ in range(rng.randint(lo, hi)))


def string_body(rng: random.Random, lo: int, hi: int, alphabet: str = string.ascii_lowercase + " ") -> str:
    """Text for inside a string literal, ``lo``..``hi`` characters, never starting or ending in a space."""
    n = rng.randint(lo, hi)
    body = [rng.choice(alphabet) for _ in range(n)]
    if body:
        body[0] = rng.choice(string.ascii_lowercase)
        body[-1] = rng.choice(string.ascii_lowercase)
    return "".join(body)
