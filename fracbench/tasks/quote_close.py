"""quote_close: which quote closes the open string literal."""

from __future__ import annotations

import random

from .base import Example, LatentSpec, OODAxis, Task
from .code import CUE_POOLS, QUOTES, cue_name, filler_line, inside_string_labels, open_string_start, quote_type_labels, scan, string_body

BODY_LENGTHS = ((20, 30), (40, 60), (80, 120))  # long_body levels 1..3; in-distribution is 1..12


class QuoteClose(Task):
    name = "quote_close"
    version = "2"  # v2 (suite 0.3): test and train draw the cue at random; the cue_agree and cue_flip splits force it
    prompts_version = "1"  # the draws of v1 for a given split and cue: the zoo's training corpus is unchanged
    description = "x = 'some text  ->  ' (not \"): close the open string with its own quote"
    latents = (
        LatentSpec("quote_type", 2, "quote that opened the enclosing string: 0 = ', 1 = \"; labelled inside strings"),
        LatentSpec("inside_string", 2, "1 if a string literal is open after this character; every position"),
    )
    ood_axes = (
        OODAxis("long_body", "the open string's body is longer than any in training", tuple(f"{a}-{b} chars" for a, b in BODY_LENGTHS)),
        OODAxis("other_quote_in_body", "the body contains the other quote character", ("1 other quote", "2 other quotes", "3 other quotes")),
    )
    cue = "the assigned variable's name comes from the pool of the answer's quote"

    def evidence(self, example: Example) -> tuple[int, ...]:
        """The quote that opened the string still open."""
        return (open_string_start(example.prompt, scan(example.prompt)),)

    def sample(self, rng: random.Random, axis: str | None, level: int, cue_agrees: bool) -> Example:
        qi = rng.randrange(2)
        quote, other = QUOTES[qi], QUOTES[1 - qi]
        lo, hi = BODY_LENGTHS[level - 1] if axis == "long_body" else (1, 12)
        body = list(string_body(rng, lo, hi))
        if axis == "other_quote_in_body":
            body = body + [" "] * max(0, 2 * level + 1 - len(body))
            for pos in rng.sample(range(1, len(body)), level):
                body[pos] = other
        prefix = ""
        for _ in range(rng.randint(0, 2)):  # context lines: neutral code or closed strings of either quote
            if rng.random() < 0.5:
                prefix += filler_line(rng) + "\n"
            else:
                q = rng.choice(QUOTES)
                prefix += f"{rng.choice(CUE_POOLS[rng.randrange(2)])} = {q}{string_body(rng, 1, 8)}{q}\n"
        prompt = f"{prefix}{cue_name(rng, qi, cue_agrees)} = {quote}{''.join(body)}"
        states = scan(prompt)
        return Example(
            prompt,
            target=quote,
            foil=other,
            latents={
                "quote_type": quote_type_labels(states),
                "inside_string": inside_string_labels(states),
            },
            cue_agrees=cue_agrees,
        )
