"""The results file: one JSON document per (model, suite run), with a versioned schema.

Every aggregate is stored next to the raw per-item numbers it comes from, and the
schema checks that they agree, so a reader (the leaderboard) never has to trust a
submitted number. ``docs/results.md`` describes every field.
"""

from __future__ import annotations

import json
import lzma
import math
import os
import tempfile
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

from pydantic import (
    AwareDatetime,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    ValidationError,
    model_validator,
)

from ..config import RunConfig
from .base import Strict
from .coherence import CircuitSection, SparsityAxis, StressSection, TaskScores

SCHEMA_VERSION = "13"  # bump on any change a reader of the old schema would misread
# Versions read_results accepts. Version 1 had only behaviour, version 2 behaviour and probes:
# their circuits and stress placeholders were null in every file fracbench wrote, so they
# read as version 3 documents without those sections. Version 3 has no untrained-twin
# baseline (probes.latents[*].untrained); version 4 adds it. Version 5 adds the optional run-level
# lm_eval section (lm-eval's results on the same model, tasks, n and seed); nothing else changed. Version 6
# (suite 0.3) probes on cue-random examples and records each test example's cue (probes.test_cue_agrees), and
# behaviour has the cue_agree and cue_flip splits. Version 7 restarts the circuit search and keeps every restart
# (circuits.restarts, circuits.reported); a version 6 file searched once. Version 8 records the ablation kind
# (circuits.ablation: pooled or position-specific means, BOS left out; version 7 and earlier averaged BOS into one
# pooled mean, "mean_with_bos") and each task's stage timings (provenance.timings.stages). Version 9 adds each
# latent's erasure at its best site (probes.latents[*].erasure); nothing else changed. Version 10 adds the circuit
# control task and the regime circuits (circuits.control, circuits.regimes: scores version 4). Version 11 (scores version 5)
# reports the smallest restart (circuits.reported: the first of the fewest nodes; 7-10 reported the median) and records
# every per-item number at RECORDED_DIGITS significant digits (docs/results.md, "Precision"). Version 12 records the run's
# whole configuration (provenance.config, a RunConfig); nothing else changed, and it is scored as version 11. Version 13
# has version 12's fields and is scored by scores version 6 (an interval on a threshold decides nothing; a reuse
# direction needs B's own margin over random shown: docs/metrics.md, "Scores version 6").
SchemaVersion = Literal["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"]
READABLE_SCHEMA_VERSIONS = get_args(SchemaVersion)
ID_SPLITS = ("train", "test", "cue_agree", "cue_flip")  # in-distribution split names; the rest are ood/<axis>/<level>
AGGREGATE_TOLERANCE = 1e-9  # stored aggregates must match the recomputed ones this closely
RECORDED_DIGITS = 3  # significant digits of every per-item number a results file records (schema 11; docs/results.md)


def recorded(values) -> list[float]:
    """Per-item numbers (a tensor, an array or a sequence) as a results file records them: each rounded to
    :data:`RECORDED_DIGITS` significant digits (relative error at most 0.5%, sign and zero kept, so no accuracy moves).
    Every score is computed from these recorded numbers, so the board's recomputation stays exact, and a full run
    stays under 1 MB compressed."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    return [float(f"{v:.{RECORDED_DIGITS}g}") for v in values]


def smallest_restart(sizes: Sequence[int]) -> int:
    """The index of the restart with the fewest nodes (``sizes``: each restart's node count; ties: the first): the circuit
    fracbench reports since scores version 5. Every restart is bisected to the target on the held-out prompts, so each
    meets the constraint and they differ only in size; a multi-start optimizer reports its best feasible solution
    (docs/metrics.md, "Scores version 5")."""
    return min(range(len(sizes)), key=lambda r: (sizes[r], r))


class ModelIdentity(Strict):
    """Which model was evaluated: enough to tell two models apart and find the weights again."""

    name: str  # e.g. "zoo:dense" or "hf:/models/pythia-70m"
    kind: str  # adapter kind: "native", "hf" or "tl" (a TransformerLens HookedTransformer)
    n_params: int = Field(ge=0)  # parameter count
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # hash of every parameter and buffer, in name order
    n_layers: int = Field(ge=0)  # transformer blocks
    d_model: int = Field(ge=1)  # residual stream width
    n_ctx: int = Field(ge=1)  # longest input, in tokens, the model accepts


class Packages(Strict):
    """Versions of what produced the numbers."""

    python: str  # e.g. "3.11.7"
    torch: str  # e.g. "2.3.1+cpu"
    numpy: str
    pydantic: str
    transformers: str | None  # None when not installed (native models do not need it)


class Timings(Strict):
    """Wall-clock seconds."""

    tasks: dict[str, NonNegativeFloat]  # task name -> seconds spent evaluating it
    # task name -> stage (behaviour, probes, circuit_search, circuit_faithfulness, circuit_ood, stress, sparsity) -> seconds;
    # empty before schema 8
    stages: dict[str, dict[str, NonNegativeFloat]] = {}
    specificity: NonNegativeFloat | None = None  # seconds of the cross-task specificity ablations; None: not measured or before schema 8
    total: NonNegativeFloat  # the whole run: model loading, every task, building the result


class Provenance(Strict):
    """How the run was made: enough to reproduce it."""

    seeds: dict[str, int]  # what each seed drove, e.g. {"examples": 0}
    batch_size: int = Field(ge=1)  # examples per forward pass (padding can move the last bits of a logit)
    packages: Packages
    device: str  # torch device the model ran on, e.g. "cpu", "cuda:0"
    dtype: str  # parameter dtype, e.g. "float32"
    command: list[str]  # the command line (argv) that produced this file
    timings: Timings
    config: RunConfig | None = None  # every setting of the run (schema 12; None before)


class SplitBehaviour(Strict):
    """The model's target-vs-foil choice on one split: raw logit differences and their aggregates."""

    n: int = Field(ge=1)  # items evaluated; equals len(logit_diffs)
    accuracy: float = Field(ge=0, le=1)  # fraction of items with logit_diff > 0
    mean_logit_diff: float  # mean of logit_diffs
    logit_diffs: list[float]  # per item, in example order: logit(target) - logit(foil) at the last prompt token
    ood_axis: str | None  # the OOD axis, or None for an in-distribution split
    level: int = Field(ge=0)  # OOD severity 1..n_levels; 0 in-distribution

    @model_validator(mode="after")
    def _aggregates_match_raw(self) -> SplitBehaviour:
        if self.n != len(self.logit_diffs):
            raise ValueError(f"n is {self.n} but there are {len(self.logit_diffs)} logit_diffs")
        acc, mean = accuracy_of(self.logit_diffs), mean_of(self.logit_diffs)
        for field, stored, recomputed in (("accuracy", self.accuracy, acc), ("mean_logit_diff", self.mean_logit_diff, mean)):
            if not math.isclose(stored, recomputed, rel_tol=AGGREGATE_TOLERANCE, abs_tol=AGGREGATE_TOLERANCE):
                raise ValueError(f"{field} is {stored!r} but the {self.n} raw logit_diffs give {recomputed!r}")
        if (self.ood_axis is None) != (self.level == 0):
            raise ValueError(f"ood_axis {self.ood_axis!r} with level {self.level}: in-distribution is (None, 0), OOD levels start at 1")
        return self

    @classmethod
    def from_logit_diffs(cls, logit_diffs: list[float], ood_axis: str | None, level: int) -> SplitBehaviour:
        """The aggregates computed here, exactly as the validator recomputes them."""
        return cls(
            n=len(logit_diffs),
            accuracy=accuracy_of(logit_diffs),
            mean_logit_diff=mean_of(logit_diffs),
            logit_diffs=logit_diffs,
            ood_axis=ood_axis,
            level=level,
        )


class Readout(Strict):
    """One probe's predictions on a list of rows: which were right, and the accuracy."""

    accuracy: float = Field(ge=0, le=1)  # fraction of '1' in correct
    correct: str = Field(pattern=r"^[01]+$")  # one character per row, in row order: '1' where the prediction equals the label

    @model_validator(mode="after")
    def _accuracy_matches_raw(self) -> Readout:
        check_close("accuracy", self.accuracy, fraction_correct(self.correct), f"the {len(self.correct)} raw correct flags")
        return self

    @classmethod
    def from_correct(cls, correct: Sequence[bool]) -> Readout:
        """The readout of per-row flags, its accuracy computed exactly as the validator does."""
        flags = "".join("1" if c else "0" for c in correct)
        return cls(accuracy=fraction_correct(flags), correct=flags)


class SiteProbes(Strict):
    """The real and the control probe at one site, fitted together: penalties chosen and readouts.

    The control probe (Hewitt & Liang 2019) is a diagnostic of the probe's expressivity;
    decodability D does not use it (docs/metrics.md, "Decodability D").
    """

    alpha: float = Field(gt=0)  # ridge penalty leave-one-out chose for the real labels
    control_alpha: float = Field(gt=0)  # ... and for the control labels
    validation: Readout  # real probe on the validation rows (held-out train examples): the best site has the most right
    control_validation: Readout  # control probe on the validation rows
    test: Readout  # real probe on the test rows
    control_test: Readout  # control probe on the test rows (control labels of test rows; unseen ones count wrong)


class MLPReadout(Strict):
    """A one-hidden-layer MLP probe at the best site: the nonlinear read-out, for the linear-vs-MLP gap."""

    site: str  # the latent's best_site
    hidden: int = Field(ge=1)  # hidden ReLU units
    test: Readout  # MLP probe on the test rows
    gap: float = Field(ge=-1, le=1)  # test.accuracy minus the linear probe's test accuracy at site


class Transfer(Strict):
    """The in-distribution linear probe at the best site, read on one OOD split's rows."""

    n: int = Field(ge=1)  # rows; len(correct)
    accuracy: float = Field(ge=0, le=1)  # fraction of '1' in correct
    n_unseen: int = Field(ge=0)  # rows whose label never occurred in the fit rows: count of '1' in unseen
    correct: str = Field(pattern=r"^[01]+$")  # per row: '1' where the probe predicted the label
    unseen: str = Field(pattern=r"^[01]+$")  # per row: '1' where the label is a class the fit rows never had (always wrong)

    @model_validator(mode="after")
    def _aggregates_match_raw(self) -> Transfer:
        if not self.n == len(self.correct) == len(self.unseen):
            raise ValueError(f"n is {self.n}, correct has {len(self.correct)} rows and unseen {len(self.unseen)}; they must be equal")
        check_close("accuracy", self.accuracy, fraction_correct(self.correct), f"the {self.n} raw correct flags")
        if self.n_unseen != self.unseen.count("1"):
            raise ValueError(f"n_unseen is {self.n_unseen} but unseen flags {self.unseen.count('1')} rows")
        check_unseen_wrong("correct", self.correct, [u == "1" for u in self.unseen])
        return self


class UntrainedBaseline(Strict):
    """The same probes on the model's untrained twin (same architecture, fresh weights): what the architecture
    alone makes decodable. Its best site is chosen on the twin's validation rows, as the model's is."""

    site: str  # the twin's best site
    test: Readout  # per test row (the model's test rows): '1' where the twin's probe predicted the label


class LatentErasure(Strict):
    """LEACE erasure of the latent at its best site, and of same-rank nonsense-concept controls: the test prompts'
    logit differences under each, in example order (docs/metrics.md, "Erasure"; the model's own are behaviour.test's)."""

    site: str  # the latent's best_site, where the eraser was fitted and applied
    rank: int = Field(ge=0)  # directions LEACE erased (at most n_classes - 1)
    n_fit: int = Field(ge=2)  # labelled tokens the eraser was fitted on
    erased: list[float]  # per test example, the logit difference with the latent erased
    controls: list[list[float]] = Field(min_length=1)  # per control draw, per test example

    @model_validator(mode="after")
    def _controls_match(self) -> LatentErasure:
        if any(len(c) != len(self.erased) for c in self.controls):
            raise ValueError(f"every control must have one logit difference per test example ({len(self.erased)})")
        return self


class LatentProbes(Strict):
    """Decodability of one latent: probes at every site, the best site's MLP gap and OOD transfer.

    Row sets: the *fit* rows train the probes, the *validation* rows (other train examples)
    pick the best site, the *test* rows (the test split's examples) give every reported accuracy.
    ``lexical`` is the baseline D measures the probe against (with chance): the best prediction
    from the current token's identity alone (:func:`fracbench.evaluate.lexical.lexical_predictions`),
    estimated on the fit rows.
    """

    n_classes: int = Field(ge=2)  # classes the task declares for this latent (0..n_classes-1)
    fit_classes: list[int]  # classes present in the fit rows, ascending; a probe can predict only these
    majority_class: int = Field(ge=0)  # the fit rows' most frequent class (the smallest on ties)
    n_fit: int = Field(ge=2)  # rows the probes were fitted on
    test_labels: list[int]  # per test row, the latent's class
    test_examples: list[int]  # per test row, the index of its example in the test split (non-decreasing)
    chance: float = Field(ge=0, le=1)  # fraction of test rows labelled majority_class
    n_unseen: int = Field(ge=0)  # test rows whose class is not in fit_classes (every probe gets them wrong)
    lexical: Readout  # per test row: '1' where the fit rows' majority label of the row's token type is its label
    sites: dict[str, SiteProbes]  # site -> probes there, in depth order
    best_site: str  # the site with the highest validation accuracy, the shallowest on ties (best_site_of)
    mlp: MLPReadout | None  # None when the nonlinear probe was not run
    transfer: dict[str, Transfer]  # OOD split "ood/<axis>/<level>" -> the best site's probe there
    untrained: UntrainedBaseline | None = None  # None: schema 3 files, or an adapter with no untrained twin
    erasure: LatentErasure | None = None  # None: schema 8 and earlier files

    @model_validator(mode="after")
    def _aggregates_match_raw(self) -> LatentProbes:
        if self.fit_classes != sorted(set(self.fit_classes)) or len(self.fit_classes) < 2:
            raise ValueError(f"fit_classes {self.fit_classes} must be at least two distinct classes, ascending")
        for field, labels in (("fit_classes", self.fit_classes), ("test_labels", self.test_labels)):
            if any(not 0 <= c < self.n_classes for c in labels):
                raise ValueError(f"{field} holds a class outside 0..{self.n_classes - 1}")
        if self.majority_class not in self.fit_classes:
            raise ValueError(f"majority_class {self.majority_class} is not in fit_classes {self.fit_classes}")
        n = len(self.test_labels)
        if n == 0 or len(self.test_examples) != n:
            raise ValueError(f"test_labels has {n} rows and test_examples {len(self.test_examples)}; need the same, at least 1")
        if any(e < 0 for e in self.test_examples) or any(b < a for a, b in zip(self.test_examples, self.test_examples[1:])):
            raise ValueError("test_examples must be non-negative and non-decreasing (rows in example order)")
        check_close("chance", self.chance, chance_of(self.test_labels, self.majority_class), f"the {n} raw test_labels")
        unseen = [c not in set(self.fit_classes) for c in self.test_labels]
        if self.n_unseen != sum(unseen):
            raise ValueError(f"n_unseen is {self.n_unseen} but {sum(unseen)} test_labels are not in fit_classes")
        if len(self.lexical.correct) != n:
            raise ValueError(f"lexical has {len(self.lexical.correct)} rows for {n} test_labels")
        check_unseen_wrong("lexical.correct", self.lexical.correct, unseen)
        if not self.sites:
            raise ValueError("sites is empty; probes need at least one site")
        n_val = {len(p.validation.correct) for p in self.sites.values()} | {len(p.control_validation.correct) for p in self.sites.values()}
        if len(n_val) != 1:
            raise ValueError(f"validation readouts have different row counts {sorted(n_val)}; every site reads the same rows")
        for site, p in self.sites.items():
            for field in ("test", "control_test"):
                if len(getattr(p, field).correct) != n:
                    raise ValueError(f"sites[{site!r}].{field} has {len(getattr(p, field).correct)} rows for {n} test_labels")
            check_unseen_wrong(f"sites[{site!r}].test.correct", p.test.correct, unseen)
        best = best_site_of(self.sites)
        if self.best_site != best:
            raise ValueError(f"best_site is {self.best_site!r} but the validation readouts select {best!r}")
        if self.mlp is not None:
            if self.mlp.site != self.best_site:
                raise ValueError(f"mlp.site is {self.mlp.site!r}; the MLP probe is read at best_site {self.best_site!r}")
            if len(self.mlp.test.correct) != n:
                raise ValueError(f"mlp.test has {len(self.mlp.test.correct)} rows for {n} test_labels")
            check_unseen_wrong("mlp.test.correct", self.mlp.test.correct, unseen)
            check_close("mlp.gap", self.mlp.gap, self.mlp.test.accuracy - self.sites[self.best_site].test.accuracy,
                        "mlp.test.accuracy minus the best site's test.accuracy")
        for split in self.transfer:
            if not split.startswith("ood/"):
                raise ValueError(f"transfer split {split!r} is not an OOD split 'ood/<axis>/<level>'")
        if self.untrained is not None:
            if self.untrained.site not in self.sites:
                raise ValueError(f"untrained.site {self.untrained.site!r} is not one of the probed sites")
            if len(self.untrained.test.correct) != n:
                raise ValueError(f"untrained.test has {len(self.untrained.test.correct)} rows for {n} test_labels")
            check_unseen_wrong("untrained.test.correct", self.untrained.test.correct, unseen)
        return self


class ProbeSection(Strict):
    """Decodability of one (model, task): how the probes were set up, and each latent's probes.

    Train examples are split by example into fit and validation parts; at most
    ``max_train_rows`` labelled tokens of the train examples and ``max_test_rows`` of the
    test (and of each OOD split's) examples are probed, a seeded uniform subsample.
    """

    kind: Literal["ridge"]  # linear probe family (fracbench.probes.LinearProbes kind)
    alphas: list[float] = Field(min_length=1)  # ridge penalties leave-one-out chose among
    max_train_rows: int = Field(ge=2)  # cap on fit + validation rows per latent
    max_test_rows: int = Field(ge=1)  # cap on test rows, and on each OOD split's rows, per latent
    n_fit_examples: int = Field(ge=1)  # train examples whose rows fit the probes
    n_validation_examples: int = Field(ge=1)  # train examples whose rows select the best site
    n_test_examples: int = Field(ge=1)  # test examples; bootstrap resamples these
    latents: dict[str, LatentProbes] = Field(min_length=1)  # latent name -> its probes, in the task's order
    skipped: dict[str, str]  # latent name -> why it was not probed (e.g. a single class in the fit rows)
    # per test example, '1' where its spurious cue agreed with the answer: D is reported on each stratum (schema 6)
    test_cue_agrees: str | None = Field(default=None, pattern=r"^[01]+$")

    @model_validator(mode="after")
    def _rows_within_examples(self) -> ProbeSection:
        if self.test_cue_agrees is not None and len(self.test_cue_agrees) != self.n_test_examples:
            raise ValueError(f"test_cue_agrees has {len(self.test_cue_agrees)} entries for {self.n_test_examples} test examples")
        both = set(self.latents) & set(self.skipped)
        if both:
            raise ValueError(f"latent {sorted(both)[0]!r} is both probed and skipped")
        for name, latent in self.latents.items():
            if latent.test_examples and latent.test_examples[-1] >= self.n_test_examples:
                raise ValueError(f"latents[{name!r}].test_examples reaches {latent.test_examples[-1]} but n_test_examples is {self.n_test_examples}")
            if len(latent.test_labels) > self.max_test_rows or any(t.n > self.max_test_rows for t in latent.transfer.values()):
                raise ValueError(f"latents[{name!r}] has more rows than max_test_rows {self.max_test_rows}")
            n_val = len(next(iter(latent.sites.values())).validation.correct)
            if latent.n_fit + n_val > self.max_train_rows:
                raise ValueError(f"latents[{name!r}] has {latent.n_fit} + {n_val} train rows, more than max_train_rows {self.max_train_rows}")
        return self


class PrunedPrompt(Strict):
    """One test prompt pruned greedily to what keeps half its logit difference (docs/metrics.md, "Which input tokens the
    prediction needs"): character positions of the prompt, the last token's left out."""

    kept: list[NonNegativeInt]  # characters of the removable tokens the pruning left
    evidence: list[NonNegativeInt] = Field(min_length=1)  # the characters the task's ground truth says carry the answer
    n_chars: int = Field(ge=1)  # characters of every removable token (the text tokens but the last)
    full: float = Field(gt=0)  # the whole prompt's logit difference (the model answers right)
    pruned: float  # the logit difference of what the pruning left

    @model_validator(mode="after")
    def _within(self) -> PrunedPrompt:
        for name in ("kept", "evidence"):
            values = getattr(self, name)
            if values != sorted(set(values)):
                raise ValueError(f"{name} must be distinct ascending character positions")
        if len(self.kept) > self.n_chars:
            raise ValueError(f"kept holds {len(self.kept)} characters of {self.n_chars} removable ones")
        return self


class TokenPruning(Strict):
    """Which input tokens the prediction needs (schema 10): the first test prompts the model answers right, pruned."""

    keep_share: float = Field(gt=0, le=1)  # the share of the logit difference the pruning keeps
    prompts: list[PrunedPrompt]  # empty when the model answers no test prompt right


class TaskResult(Strict):
    """Everything measured for one (model, task)."""

    version: str  # the task's version: numbers are comparable only between equal versions
    n_examples: dict[str, NonNegativeInt]  # split name -> examples used from it (by any section)
    behaviour: dict[str, SplitBehaviour]  # split name ("test", "ood/<axis>/<level>") -> behaviour
    probes: ProbeSection | None = None  # decodability; None when the run skipped it (--no-probes)
    circuits: CircuitSection | None = None  # the circuit, its faithfulness in and out of distribution; None: --no-circuits
    stress: StressSection | None = None  # robustness curves of the model and the circuit; None without a circuit
    sparsity: dict[str, dict[str, SparsityAxis]] | None = None  # site -> OOD axis -> activation sparsity (diagnostic)
    token_pruning: TokenPruning | None = None  # which input tokens the prediction needs (schema 10; diagnostic)
    scores: TaskScores | None = None  # D, C, F and the verdict as scoring computed them (readers recompute)

    @model_validator(mode="after")
    def _splits_consistent(self) -> TaskResult:
        for split, b in self.behaviour.items():
            expected = split in ID_SPLITS if b.ood_axis is None else split == f"ood/{b.ood_axis}/{b.level}"
            if not expected:
                raise ValueError(f"behaviour split {split!r} does not match its ood_axis {b.ood_axis!r} and level {b.level}")
            if self.n_examples.get(split) != b.n:
                raise ValueError(f"n_examples[{split!r}] is {self.n_examples.get(split)} but behaviour[{split!r}].n is {b.n}")
        if self.probes is not None:
            p = self.probes
            n_train = p.n_fit_examples + p.n_validation_examples
            for split, n in (("train", n_train), ("test", p.n_test_examples)):
                if self.n_examples.get(split) != n:
                    raise ValueError(f"n_examples[{split!r}] is {self.n_examples.get(split)} but the probes used {n} {split} examples")
            for name, latent in p.latents.items():
                for split in latent.transfer:
                    if split not in self.n_examples:
                        raise ValueError(f"probes.latents[{name!r}].transfer[{split!r}]: split missing from n_examples")
                e = latent.erasure
                if e is not None and ("test" not in self.behaviour or len(e.erased) != self.behaviour["test"].n):
                    raise ValueError(f"probes.latents[{name!r}].erasure has {len(e.erased)} test prompts; behaviour.test has "
                                     f"{self.behaviour['test'].n if 'test' in self.behaviour else 'none'}")
                if e is not None and e.site != latent.best_site:
                    raise ValueError(f"probes.latents[{name!r}].erasure is at {e.site!r}, not the best site {latent.best_site!r}")
        self._check_circuit_items()
        return self

    def _check_circuit_items(self) -> None:
        """Circuit and stress numbers are per prompt of the behaviour splits they refer to."""
        if self.stress is not None and self.circuits is None:
            raise ValueError("stress curves need the circuit they perturb; circuits is missing")
        if self.circuits is None:
            return
        if "test" not in self.behaviour:
            raise ValueError("circuits need the test split's behaviour (the full model's numbers)")
        if self.circuits.n_search_examples > self.n_examples.get("train", 0):
            raise ValueError(f"circuits.n_search_examples is {self.circuits.n_search_examples} but n_examples['train'] is "
                             f"{self.n_examples.get('train', 0)}: the search's train examples must be counted there")
        n = self.behaviour["test"].n
        if len(self.circuits.test.circuit) != n:
            raise ValueError(f"circuits.test has {len(self.circuits.test.circuit)} prompts; behaviour['test'] has {n}")
        for split, ood in self.circuits.ood.items():
            if split not in self.behaviour or self.behaviour[split].ood_axis is None:
                raise ValueError(f"circuits.ood[{split!r}]: no OOD behaviour split of that name")
            if len(ood.circuit) != self.behaviour[split].n:
                raise ValueError(f"circuits.ood[{split!r}] has {len(ood.circuit)} prompts; behaviour[{split!r}] has {self.behaviour[split].n}")
        if self.stress is not None:
            for kind in ("activation_noise", "dropout", "weight_noise", "distractors"):
                curve = getattr(self.stress, kind)
                if curve is not None and len(curve.model[0]) != n:
                    raise ValueError(f"stress.{kind} has {len(curve.model[0])} prompts per level; behaviour['test'] has {n}")


class LmEvalSection(Strict):
    """lm-evaluation-harness run on the same model, through fracbench's lm-eval tasks (docs/integrations.md)."""

    lm_eval_version: str
    model_args: str  # as lm-eval was given them
    n: int = Field(ge=1)  # fracbench_n: examples per split
    seed: int  # fracbench_seed
    results: dict[str, dict[str, JsonValue]]  # lm-eval's "results": task or group -> metric -> value (non-finite: null)
    versions: dict[str, JsonValue]  # lm-eval's "versions"
    n_samples: dict[str, JsonValue]  # lm-eval's "n-samples"


class RunResult(Strict):
    """One model evaluated on (part of) the suite: the document a results file holds."""

    schema_version: SchemaVersion  # SCHEMA_VERSION when fracbench writes it; "1"-"7": older files
    fracbench_version: str  # the fracbench that wrote the file
    suite_version: str  # the task suite's version (fracbench.tasks.SUITE_VERSION)
    created: AwareDatetime  # when the run finished, ISO 8601 with a time zone (UTC when fracbench writes it)
    model: ModelIdentity
    provenance: Provenance
    tasks: dict[str, TaskResult]  # task name -> its results
    # Break It Down specificity: circuit task -> other task -> per prompt of the other task's test
    # split, its logit differences with the circuit task's circuit mean-ablated (with the other
    # task's means). The diagonal is each task's own circuits.test.complement. None: fewer than
    # two tasks with circuits.
    specificity: dict[str, dict[str, list[float]]] | None = None
    lm_eval: LmEvalSection | None = None  # lm-eval's results for the same model, tasks, n and seed (`run --lm-eval`)

    @model_validator(mode="after")
    def _sections_exist_in_version(self) -> RunResult:
        if not self.since(5) and self.lm_eval is not None:
            raise ValueError(f"schema_version {self.schema_version} has no lm_eval section; schema_version 5 and later files carry it")
        if not self.since(6) and any(t.probes is not None and t.probes.test_cue_agrees is not None
                                                              for t in self.tasks.values()):
            raise ValueError(f"schema_version {self.schema_version} does not record the test examples' cue; schema_version 6 and later "
                             "files do")
        if not self.since(7) and any(t.circuits is not None and t.circuits.restarts for t in self.tasks.values()):
            raise ValueError(f"schema_version {self.schema_version} searched each circuit once (no circuits.restarts); schema_version 7 "
                             "and later files carry the restarts")
        if self.schema_version == "1":
            bad = [name for name, t in self.tasks.items() if t.probes is not None]
            if bad:
                raise ValueError(f"schema_version 1 has no probes section, but task {bad[0]!r} has one; schema_version 2 files carry probes")
        if self.schema_version in ("1", "2", "3"):
            bad = [name for name, t in self.tasks.items() if t.probes and any(lat.untrained for lat in t.probes.latents.values())]
            if bad:
                raise ValueError(f"schema_version {self.schema_version} has no untrained-twin baseline, but task {bad[0]!r} has one; "
                                 "schema_version 4 files carry it")
        if self.schema_version in ("1", "2"):
            bad = [name for name, t in self.tasks.items() if t.circuits or t.stress or t.sparsity or t.scores]
            if bad or self.specificity is not None:
                raise ValueError(f"schema_version {self.schema_version} has no circuit sections (task {bad[0] if bad else 'specificity'!r}); "
                                 "schema_version 3 files carry them")
        if self.specificity is not None:
            for source, row in self.specificity.items():
                if source not in self.tasks or self.tasks[source].circuits is None:
                    raise ValueError(f"specificity[{source!r}]: no task with a circuit of that name")
                for other, diffs in row.items():
                    if other == source or other not in self.tasks or "test" not in self.tasks[other].behaviour:
                        raise ValueError(f"specificity[{source!r}][{other!r}]: must be another task with test behaviour")
                    if len(diffs) != self.tasks[other].behaviour["test"].n:
                        raise ValueError(f"specificity[{source!r}][{other!r}] has {len(diffs)} prompts; "
                                         f"{other}'s test split has {self.tasks[other].behaviour['test'].n}")
        return self

    def since(self, version: int) -> bool:
        """Whether this document's schema is ``version`` or later."""
        return int(self.schema_version) >= version

    @model_validator(mode="after")
    def _config_in_version(self) -> RunResult:
        """Schema 12 records the run's configuration, which must describe this file."""
        config = self.provenance.config
        if not self.since(12) and config is not None:
            raise ValueError(f"schema_version {self.schema_version} has no provenance.config; schema_version 12 files carry it")
        if self.since(12):
            if config is None:
                raise ValueError(f"schema_version {self.schema_version} records the run's configuration, but provenance.config is missing")
            if set(config.tasks) != set(self.tasks):
                raise ValueError(f"provenance.config.tasks is {', '.join(config.tasks)}, but the file's tasks are {', '.join(self.tasks)}")
            if (config.seed, config.batch_size) != (self.provenance.seeds.get("examples"), self.provenance.batch_size):
                raise ValueError(f"provenance.config has seed {config.seed} and batch_size {config.batch_size}, but provenance has "
                                 f"seeds.examples {self.provenance.seeds.get('examples')} and batch_size {self.provenance.batch_size}")
        return self

    @model_validator(mode="after")
    def _reported_restart_in_version(self) -> RunResult:
        """Schema 11 (scores version 5) reports the smallest restart: the first of the fewest nodes."""
        if self.since(11):
            for name, t in self.tasks.items():
                c = t.circuits
                if c is not None and c.restarts:
                    smallest = smallest_restart([r.n_nodes for r in c.restarts])
                    if c.reported != smallest:
                        raise ValueError(f"task {name!r}: circuits.reported is restart {c.reported} ({c.restarts[c.reported].n_nodes} "
                                         f"nodes), but schema_version 11 and later report the first restart of the fewest nodes: {smallest} "
                                         f"({c.restarts[smallest].n_nodes} nodes)")
        return self

    @model_validator(mode="after")
    def _ablation_and_timings_in_version(self) -> RunResult:
        """Schema 8 records the ablation kind and stage timings; earlier files pooled BOS into one mean and had neither."""
        circuits = {name: t.circuits for name, t in self.tasks.items() if t.circuits is not None}
        if not self.since(9) and any(latent.erasure is not None for t in self.tasks.values() if t.probes is not None
                                                        for latent in t.probes.latents.values()):
            raise ValueError(f"schema_version {self.schema_version} has no erasure (probes.latents[*].erasure); schema_version 9 "
                             "files carry it")
        if not self.since(10) and any(t.token_pruning is not None for t in self.tasks.values()):
            raise ValueError(f"schema_version {self.schema_version} has no token pruning (tasks.*.token_pruning); schema_version 10 "
                             "files carry it")
        if not self.since(10) and any(c.control is not None or c.regimes is not None for c in circuits.values()):
            raise ValueError(f"schema_version {self.schema_version} has no circuit control task or regime circuits (circuits.control, "
                             "circuits.regimes); schema_version 10 files carry them")
        if self.since(8):
            old = [name for name, c in circuits.items() if c.ablation == "mean_with_bos"]
            if old:
                raise ValueError(f"task {old[0]!r}: circuits.ablation is missing or 'mean_with_bos'; schema_version 8 files record "
                                 "'mean' or 'positional_mean'")
        else:
            new = [name for name, c in circuits.items() if c.ablation != "mean_with_bos"]
            if new:
                raise ValueError(f"task {new[0]!r}: circuits.ablation is {circuits[new[0]].ablation!r}, but schema_version "
                                 f"{self.schema_version} files averaged BOS into one mean ('mean_with_bos'); schema_version 8 records "
                                 "the kind")
            if self.provenance.timings.stages or self.provenance.timings.specificity is not None:
                raise ValueError(f"schema_version {self.schema_version} has no stage timings (provenance.timings.stages, specificity); "
                                 "schema_version 8 files carry them")
        return self


def accuracy_of(logit_diffs: list[float]) -> float:
    """Fraction of items the model gets right (logit_diff > 0; a tie is wrong)."""
    return sum(d > 0 for d in logit_diffs) / len(logit_diffs)


def mean_of(logit_diffs: list[float]) -> float:
    """Mean with exactly rounded summation, so every reader recomputes the same number."""
    return math.fsum(logit_diffs) / len(logit_diffs)


def fraction_correct(correct: str) -> float:
    """Accuracy of a string of per-row flags: the fraction of '1'."""
    return correct.count("1") / len(correct)


def chance_of(labels: Sequence[int], majority_class: int) -> float:
    """Accuracy of always predicting ``majority_class`` on rows labelled ``labels``."""
    return sum(c == majority_class for c in labels) / len(labels)


def best_site_of(sites: Mapping[str, SiteProbes]) -> str:
    """The site whose real probe is right on the most validation rows, the earliest
    (shallowest) site on ties.

    D's floor (chance, the lexical baseline) does not depend on the site, so this is also
    the site of the largest d on the validation rows. Counts are compared, not floats, so
    every reader picks the same site.
    """
    return max(sites, key=lambda s: (sites[s].validation.correct.count("1"), -list(sites).index(s)))


def check_close(field: str, stored: float, recomputed: float, source: str) -> None:
    """Raise naming ``field`` when a stored aggregate disagrees with its recomputation from raw numbers."""
    if not math.isclose(stored, recomputed, rel_tol=AGGREGATE_TOLERANCE, abs_tol=AGGREGATE_TOLERANCE):
        raise ValueError(f"{field} is {stored!r} but {source} give {recomputed!r}")


def check_unseen_wrong(field: str, correct: str, unseen: Sequence[bool]) -> None:
    """A probe cannot predict a class it never saw in fit: such rows must be '0'."""
    for i, (c, u) in enumerate(zip(correct, unseen)):
        if u and c == "1":
            raise ValueError(f"{field}[{i}] is '1' but that row's label never occurred in the fit rows; it must be '0'")


def check_writable(directory: str | Path) -> Path:
    """Create ``directory`` if needed and prove a file can be written in it, before any expensive work."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=d, prefix=".fracbench-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(
            f"cannot write files into {str(d)!r}: {err.strerror or err}; choose a directory you can write (--out)"
        ) from None
    return d


PER_ITEM_FIELDS = {"logit_diffs", "erased", "controls", "empty", "circuit", "complement", "learned", "random", "random_complement",
            "test", "ood", "random_test", "random_ood", "model"}  # fields that hold per-item numbers (lists; elsewhere objects)


def record_document(node):
    """A parsed results document with every per-item list as schema 11 records it (:func:`recorded`) and the behaviour
    means recomputed from them: an older file made comparable, and what experiments/recording_precision.py measures."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in PER_ITEM_FIELDS and isinstance(value, list) and value and all(isinstance(v, float | int) for v in value):
                out[key] = recorded(value)
            elif key in PER_ITEM_FIELDS and isinstance(value, list) and value and all(isinstance(v, list) for v in value):
                out[key] = [recorded(row) for row in value]
            elif key == "specificity" and isinstance(value, dict):
                out[key] = {a: {b: recorded(row) for b, row in others.items()} for a, others in value.items()}
            else:
                out[key] = record_document(value)
        if "logit_diffs" in out and "mean_logit_diff" in out:
            out["mean_logit_diff"] = mean_of(out["logit_diffs"])
        return out
    if isinstance(node, list):
        return [record_document(v) for v in node]
    return node


RESULTS_SUFFIX = ".json.xz"  # what `fracbench run` writes: compact JSON in an xz container (lzma, Python's standard library)
XZ_MAGIC = b"\xfd7zXZ\x00"  # the first bytes of every xz stream
MAX_RESULTS_BYTES = 256 * 2**20  # the most JSON a compressed results file may expand to (a full run at n 512 is about 5 MB)


def results_json(raw: bytes, limit: int = MAX_RESULTS_BYTES) -> bytes:
    """The JSON bytes of a results file's content: xz-compressed (told by its first bytes, not its name) or plain.
    A stream that is corrupt, truncated or expands past ``limit`` bytes is a ValueError saying which."""
    if not raw.startswith(XZ_MAGIC):
        return raw
    unpacker = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        text = unpacker.decompress(raw, max_length=limit + 1)
    except lzma.LZMAError as err:
        raise ValueError(f"is an xz file that cannot be decompressed ({err}); write it again with fracbench") from None
    if len(text) > limit:
        raise ValueError(f"expands to more than {limit:,} bytes of JSON, more than any results file")
    if not unpacker.eof or unpacker.unused_data:
        raise ValueError("is a truncated xz file (or has bytes after its end); copy it again or rerun fracbench")
    return text


def encode_results(result: RunResult, compressed: bool = True) -> bytes:
    """The bytes of a results file: compact JSON in xz (``compressed``), else indented JSON a person can read."""
    if compressed:
        return lzma.compress(result.model_dump_json().encode(), format=lzma.FORMAT_XZ, preset=9)
    return (result.model_dump_json(indent=2) + "\n").encode()


def write_results(result: RunResult, path: str | Path) -> Path:
    """Write ``result`` atomically: the file is complete and valid, or it does not exist. A name ending in ``.xz``
    gets compact JSON in xz (:data:`RESULTS_SUFFIX`, what ``fracbench run`` writes), any other indented JSON."""
    path = Path(path)
    check_writable(path.parent)
    data = encode_results(result, compressed=path.name.endswith(".xz"))
    RunResult.model_validate_json(results_json(data))  # never write what read_results would refuse
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_results(path: str | Path) -> RunResult:
    """Read and validate a results file; a schema version this fracbench does not know is refused."""
    path = Path(path)
    try:
        text = results_json(path.read_bytes())
    except ValueError as err:
        raise ValueError(f"{path} {err}") from None
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not JSON: {err}") from None
    except RecursionError:
        raise ValueError(f"{path} nests too deeply to be a results file") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version not in READABLE_SCHEMA_VERSIONS:
        raise ValueError(
            f"{path}: schema_version {version!r} is not one this fracbench reads "
            f"(it reads schema_version {', '.join(READABLE_SCHEMA_VERSIONS)}); use the fracbench that wrote it, or upgrade"
        )
    try:
        return RunResult.model_validate_json(text)
    except ValidationError as err:
        problems = "; ".join(f"{where}: {what}" for where, what in validation_problems(err))
        raise ValueError(f"{path} is not a valid fracbench results file: {problems}") from None


def validation_problems(err: ValidationError) -> list[tuple[str, str]]:
    """pydantic's errors in fracbench's words: (dotted field path, what is wrong), without the input dump or the URL."""
    return [(".".join(map(str, e["loc"])) or "<document>", e["msg"].removeprefix("Value error, ")) for e in err.errors()]


__all__ = [
    "SCHEMA_VERSION",
    "READABLE_SCHEMA_VERSIONS",
    "ModelIdentity",
    "Packages",
    "Timings",
    "Provenance",
    "SplitBehaviour",
    "Readout",
    "SiteProbes",
    "MLPReadout",
    "Transfer",
    "UntrainedBaseline",
    "LatentProbes",
    "ProbeSection",
    "TaskResult",
    "LmEvalSection",
    "RunResult",
    "RECORDED_DIGITS",
    "recorded",
    "record_document",
    "accuracy_of",
    "mean_of",
    "fraction_correct",
    "chance_of",
    "best_site_of",
    "check_writable",
    "RESULTS_SUFFIX",
    "results_json",
    "encode_results",
    "write_results",
    "read_results",
    "validation_problems",
]
