"""What a task is: a named, versioned, seeded generator of binary next-token choices.

An :class:`Example` is a prompt, the correct next character (``target``), the
wrong one (``foil``) and ground-truth latent variables labelled at character
positions of the prompt. Tasks know nothing of models: positions are in
characters, and adapters map them to their own tokens.
"""

from __future__ import annotations

import random
import zlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ..registry import unknown_name_message

ID_SPLITS = ("train", "test")
# In-distribution test prompts with the spurious cue forced to agree with the answer / to point at the foil:
# their accuracy difference is the model's cue reliance (docs/metrics.md, "Cue reliance").
CUE_SPLITS = ("cue_agree", "cue_flip")
CUES = ("default", "random", "agree", "flip")  # what Task.examples' ``cue`` takes
TEST_FRACTION_MOD = 5  # a prompt belongs to "test" iff crc32(prompt) % 5 == 0: disjoint splits by construction


@dataclass(frozen=True)
class LatentSpec:
    """A ground-truth variable the task needs, with integer classes 0..n_classes-1."""

    name: str
    n_classes: int
    description: str


@dataclass(frozen=True)
class OODAxis:
    """A direction of distribution shift; severity levels are 1..n_levels, larger is farther."""

    name: str
    description: str
    levels: tuple[str, ...]  # one short description per severity level, level i at index i-1

    @property
    def n_levels(self) -> int:
        return len(self.levels)


@dataclass(frozen=True)
class Split:
    """``train``, ``test`` or ``ood/<axis>/<level>``."""

    name: str
    axis: str | None = None
    level: int = 0  # 0 for the in-distribution splits

    @property
    def is_ood(self) -> bool:
        return self.axis is not None

    @property
    def is_cue(self) -> bool:
        """A cue split: test prompts with the spurious cue forced (``cue_agree`` or ``cue_flip``)."""
        return self.name in CUE_SPLITS

    @property
    def cue(self) -> str:
        """How the split sets the cue by default: forced on the cue splits, random everywhere else."""
        return {"cue_agree": "agree", "cue_flip": "flip"}.get(self.name, "random")

    @classmethod
    def parse(cls, text: str) -> Split:
        if text in ID_SPLITS or text in CUE_SPLITS:
            return cls(text)
        parts = text.split("/")
        if len(parts) != 3 or parts[0] != "ood" or not parts[2].isdigit():
            raise ValueError(f"split {text!r} is neither 'train', 'test', 'cue_agree', 'cue_flip' nor 'ood/<axis>/<level>'")
        return cls(text, parts[1], int(parts[2]))


@dataclass(frozen=True)
class Example:
    """One binary next-character choice with its ground truth."""

    prompt: str
    target: str  # the correct next character
    foil: str  # the wrong alternative
    latents: Mapping[str, tuple[tuple[int, int], ...]]  # latent name -> ((char position, class), ...)
    cue_agrees: bool = field(default=True, compare=False)  # whether the spurious surface cue points at target

    def __post_init__(self) -> None:
        assert self.target != self.foil, f"target and foil are both {self.target!r}"
        for name, labels in self.latents.items():
            for pos, _ in labels:
                assert 0 <= pos < len(self.prompt), f"latent {name} at {pos} outside prompt of {len(self.prompt)} chars"


def stable_seed(*parts: object) -> int:
    """A seed that is the same in every process (unlike ``hash``, which Python salts)."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


def in_test_split(prompt: str) -> bool:
    return zlib.crc32(prompt.encode()) % TEST_FRACTION_MOD == 0


class Task(ABC):
    """A family of examples with in-distribution splits and OOD axes.

    Subclasses set the class attributes and implement :meth:`sample`, which draws
    one example for a severity setting; this base class turns that into named,
    seeded, disjoint splits.
    """

    name: ClassVar[str]
    version: ClassVar[str]  # bump whenever the examples a seed produces change (prompts, answers or latents)
    # The version the random draws are seeded with: ``version`` unless a bump left the draws alone (changed only
    # how latents are labelled, or which cue a split takes by default), so that the same (split, seed, cue)
    # still draws the same prompts and the zoo's training corpus stays what it was trained on.
    prompts_version: ClassVar[str | None] = None
    description: ClassVar[str]
    latents: ClassVar[tuple[LatentSpec, ...]]
    ood_axes: ClassVar[tuple[OODAxis, ...]]
    cue: ClassVar[str]  # the spurious surface cue: random in every split but the cue splits, which force it

    @abstractmethod
    def sample(self, rng: random.Random, axis: str | None, level: int, cue_agrees: bool) -> Example:
        """One example: in-distribution when ``axis`` is None, else shifted along ``axis`` at ``level``."""

    def evidence(self, example: Example) -> tuple[int, ...] | None:
        """The character positions of ``example``'s prompt that carry its answer, by the task's ground truth (what an
        input-token attribution should keep: docs/metrics.md, "Which input tokens the prediction needs"); None for a
        task that does not say, which a run then measures without token pruning."""
        return None

    # -- splits -------------------------------------------------------------------
    def splits(self) -> list[Split]:
        out = [Split(s) for s in (*ID_SPLITS, *CUE_SPLITS)]
        for axis in self.ood_axes:
            out += [Split(f"ood/{axis.name}/{lvl}", axis.name, lvl) for lvl in range(1, axis.n_levels + 1)]
        return out

    def split(self, name: str) -> Split:
        split = Split.parse(name)
        if split.is_ood:
            axes = {a.name: a for a in self.ood_axes}
            if split.axis not in axes:
                raise KeyError(unknown_name_message(f"OOD axis of task {self.name!r}", split.axis, axes))
            if not 1 <= split.level <= axes[split.axis].n_levels:
                raise ValueError(
                    f"task {self.name!r} axis {split.axis!r} has levels 1..{axes[split.axis].n_levels}, got {split.level}"
                )
        return split

    def examples(self, split: str, n: int, seed: int = 0, *, cue: str = "default") -> list[Example]:
        """The first ``n`` examples of ``split``; example i depends only on (task, prompts version, split, seed,
        cue, i).

        ``cue``: "default" takes the split's own (:attr:`Split.cue`: random on train, test and every OOD
        split, so that each OOD axis measures its own shift; forced to agree on ``cue_agree`` and to point at
        the foil on ``cue_flip``); "random", "agree" and "flip" force it on any split ("random" is the
        corpus of the zoo's honest models, "agree" the shortcut model's). The cue splits draw test prompts.
        """
        if cue not in CUES:
            raise ValueError(f"cue must be one of {', '.join(map(repr, CUES))}, got {cue!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        sp = self.split(split)
        mode = sp.cue if cue == "default" else cue
        pool = "test" if sp.is_cue else sp.name  # the cue splits are test prompts; their own name keeps their draws apart
        out: list[Example] = []
        i = 0
        while len(out) < n:
            rng = random.Random(stable_seed(self.name, self.prompts_version or self.version, sp.name, seed, mode, i))
            i += 1
            agrees = {"agree": True, "flip": False, "random": rng.random() < 0.5}[mode]
            ex = self.sample(rng, sp.axis, sp.level, agrees)
            # train and test are disjoint by the prompt's hash; OOD splits take every draw
            if pool == "train" and in_test_split(ex.prompt):
                continue
            if pool == "test" and not in_test_split(ex.prompt):
                continue
            out.append(ex)
        return out

    def latent(self, name: str) -> LatentSpec:
        specs = {s.name: s for s in self.latents}
        if name not in specs:
            raise KeyError(unknown_name_message(f"latent of task {self.name!r}", name, specs))
        return specs[name]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r})"
