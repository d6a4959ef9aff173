"""Results schema, coherence half: circuit, stress, OOD, sparsity and score sections.

Raw per-item numbers only (logit differences per prompt and condition), from which
:mod:`fracbench.scoring` recomputes every component of coherence C. ``docs/results.md``
describes every field. Imported by :mod:`fracbench.results`, which it must not import.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, model_validator

from .base import Strict


class CircuitConditions(Strict):
    """Per test prompt, logit(target) - logit(foil) under the conditions faithfulness compares;
    the full model's are the test split's behaviour logit_diffs."""

    empty: list[float] = Field(min_length=1)  # every node mean-ablated
    circuit: list[float] = Field(min_length=1)  # every node outside the circuit mean-ablated
    complement: list[float] = Field(min_length=1)  # the circuit's nodes mean-ablated

    @model_validator(mode="after")
    def _same_prompts(self) -> CircuitConditions:
        lengths = {len(self.empty), len(self.circuit), len(self.complement)}
        if len(lengths) != 1:
            raise ValueError(f"empty, circuit and complement must have one value per prompt each; got lengths {sorted(lengths)}")
        return self


class OODCircuit(Strict):
    """The in-distribution circuit (and means) on one OOD split; the full model's numbers are the
    split's behaviour logit_diffs."""

    empty: list[float] = Field(min_length=1)
    circuit: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _same_prompts(self) -> OODCircuit:
        if len(self.empty) != len(self.circuit):
            raise ValueError(f"empty has {len(self.empty)} values and circuit {len(self.circuit)}; one per prompt each")
        return self


class FaithfulnessCurve(Strict):
    """The circuit's faithfulness across sizes (MIB's CPR/CMD grid) for the learned ranking and a random one, and
    random node sets of the circuit's size ablated; per prompt of the test split, logit differences."""

    sizes: list[int] = Field(min_length=2)  # nodes kept at each grid point (fracbench.circuits.curves.SIZE_GRID), ascending
    learned: list[list[float]]  # per size: the learned ranking's top nodes alone
    random: list[list[float]]  # per size: a random ranking's (drawn over the node keys)
    random_complement: list[list[float]] = Field(min_length=1)  # per random set of the circuit's size: that set ablated

    @model_validator(mode="after")
    def _shapes(self) -> FaithfulnessCurve:
        if self.sizes != sorted(self.sizes):
            raise ValueError("sizes must ascend")
        if len(self.learned) != len(self.sizes) or len(self.random) != len(self.sizes):
            raise ValueError(f"{len(self.sizes)} sizes but {len(self.learned)} learned and {len(self.random)} random rows")
        if len({len(row) for row in (*self.learned, *self.random, *self.random_complement)}) != 1:
            raise ValueError("every row holds one value per test prompt")
        return self


class SearchRestart(Strict):
    """One restart of the mask search (its own initial noise and its own prompts at each step) and what C's interval
    needs of it, on the test split's prompts: the reported circuit is one of them, the others measure the search's
    own variance (scoring draws a restart per bootstrap replicate)."""

    kept: dict[str, list[int]]  # node site -> indices of this restart's circuit, ascending (sites with none omitted)
    n_nodes: NonNegativeInt
    search_sufficiency: float  # on the bisection's held-out train prompts at the chosen size
    circuit: list[float] = Field(min_length=1)  # every node outside this circuit mean-ablated
    complement: list[float] = Field(min_length=1)  # this circuit's nodes mean-ablated
    learned: list[list[float]] = Field(min_length=2)  # per curve size (CircuitSection.curve.sizes): this ranking's top nodes alone


class ControlCircuit(Strict):
    """The circuit control task (docs/metrics.md, "Circuit control task"): the search run for labels the model does not
    compute (the control's target is the task's foil where a seeded hash of the prompt's length says so), its ranking cut
    at the circuit's size and at every curve size; per test prompt, logit(target) - logit(foil) of the *task* (the
    control's logit difference is minus this where ``flip``)."""

    flip: list[bool] = Field(min_length=1)  # per test prompt: the control's target is the task's foil
    circuit: list[float] = Field(min_length=1)  # the control ranking's top n_nodes (the circuit's size) alone
    learned: list[list[float]] = Field(min_length=2)  # per curve size (CircuitSection.curve.sizes): its top nodes alone


RegimeName = Literal["id", "short", "long", "ood"]


class RegimeCircuit(Strict):
    """One regime's circuit (docs/metrics.md, "Mechanism reuse across regimes"), alone on every in-distribution test
    prompt and every pooled OOD prompt, beside random node sets of its size."""

    kept: dict[str, list[int]]  # node site -> indices, ascending (sites with none omitted)
    n_nodes: NonNegativeInt
    search_sufficiency: float | None  # on the regime's held-out search prompts; None: the regime shows no behaviour, no circuit
    test: list[float] | None  # per in-distribution test prompt, the circuit alone; None without a circuit
    ood: list[float] | None  # per pooled OOD prompt (RegimeSection.ood_prompts); None without a circuit or a pool
    random_test: list[list[float]] = []  # per random node set of n_nodes, per test prompt
    random_ood: list[list[float]] = []  # per random node set, per pooled OOD prompt

    @model_validator(mode="after")
    def _consistent(self) -> RegimeCircuit:
        if self.n_nodes != sum(len(i) for i in self.kept.values()):
            raise ValueError(f"n_nodes is {self.n_nodes} but kept lists {sum(len(i) for i in self.kept.values())} nodes")
        if (self.search_sufficiency is None) != (self.test is None):
            raise ValueError("a regime circuit has test numbers exactly when it was searched (search_sufficiency set)")
        if self.test is not None and not self.random_test:
            raise ValueError("a searched regime circuit needs its random node sets (random_test)")
        if len(self.random_ood) not in (0, len(self.random_test)):
            raise ValueError(f"{len(self.random_test)} random sets on the test prompts but {len(self.random_ood)} on the OOD pool")
        return self


class RegimeSection(Strict):
    """Mechanism reuse across regimes: the circuits of the length regimes and of the usable OOD splits pooled, beside the
    reported in-distribution circuit (``id``)."""

    short_chars: int = Field(ge=1)  # an in-distribution prompt shorter than this many characters is "short"
    short: list[bool] = Field(min_length=1)  # per test prompt
    ood_prompts: list[tuple[str, NonNegativeInt]]  # the pooled OOD regime: (OOD split, index among its test prompts)
    circuits: dict[RegimeName, RegimeCircuit]

    @model_validator(mode="after")
    def _shapes(self) -> RegimeSection:
        if "id" not in self.circuits:
            raise ValueError("regimes.circuits needs 'id', the reported circuit")
        if ("ood" in self.circuits) != bool(self.ood_prompts):
            raise ValueError("an 'ood' regime circuit comes with its pooled OOD prompts (ood_prompts), and only with them")
        for name, c in self.circuits.items():
            if c.test is None:
                continue
            rows = [c.test, *c.random_test]
            if {len(r) for r in rows} != {len(self.short)}:
                raise ValueError(f"regimes.circuits[{name!r}]: one value per test prompt ({len(self.short)}) in test and random_test")
            ood_rows = [r for r in (c.ood, *c.random_ood) if r is not None]
            if (c.ood is None) != (not self.ood_prompts) or {len(r) for r in ood_rows} - {len(self.ood_prompts)}:
                raise ValueError(f"regimes.circuits[{name!r}]: one value per pooled OOD prompt ({len(self.ood_prompts)}) in ood "
                                 "and random_ood")
        return self


class CircuitSection(Strict):
    """The task's circuit (Gao et al. node masks, bisected to a sufficiency target) and its faithfulness."""

    target: float = Field(gt=0, le=1)  # sufficiency the circuit reached on the search prompts (bisection target)
    steps: NonNegativeInt  # optimizer steps of the mask search
    penalty: float = Field(ge=0)  # loss per kept node in the mask search
    seed: int  # seeds the mask search's initial scores
    n_search_examples: int = Field(ge=1)  # the first train examples: node means and stds, mask search (the next as many: bisection)
    # what a node outside the circuit takes: its mean over the search prompts' text tokens ("mean"), its mean at the same
    # position ("positional_mean"); schema 7 and earlier averaged every token, BOS included ("mean_with_bos")
    ablation: Literal["mean", "positional_mean", "mean_with_bos"] = "mean_with_bos"
    node_sites: dict[str, int] = Field(min_length=1)  # node site -> its number of nodes (the whole node space)
    kept: dict[str, list[int]]  # node site -> indices of the circuit's nodes there, ascending (sites with none omitted)
    n_nodes: NonNegativeInt  # nodes in the circuit: the total of kept
    n_edges: NonNegativeInt | None  # nonzero weights joining two kept nodes; None when the adapter hides its weights
    edge_slots: int | None = Field(ge=1)  # weight entries between node sites (zero or not): compactness's denominator
    search_sufficiency: float | None  # sufficiency on the bisection's held-out train prompts at the chosen size; None: no search ran
    # (the full model is not MIN_EFFECT logits above the all-ablated one: nothing to explain; no node kept)
    test: CircuitConditions  # on the test split's prompts (the behaviour test items, in order)
    ood: dict[str, OODCircuit]  # OOD split -> the circuit there
    curve: FaithfulnessCurve | None = None  # None: no search ran (or an older schema)
    restarts: list[SearchRestart] = []  # every restart of the search, the reported circuit's included; empty: no search ran
    # (or an older schema, which searched once)
    reported: NonNegativeInt | None = None  # the restart kept, kept..curve describe (schema 11: the first of the fewest nodes; 7-10: the
    # median size); None without restarts
    control: ControlCircuit | None = None  # the circuit control task (schema 10); None: no search ran (or an older schema)
    regimes: RegimeSection | None = None  # mechanism reuse across regimes (schema 10); None: no search ran (or an older schema)

    @model_validator(mode="after")
    def _nodes_consistent(self) -> CircuitSection:
        if self.curve is not None and {len(row) for row in self.curve.learned} != {len(self.test.circuit)}:
            raise ValueError(f"curve rows must hold one value per test prompt ({len(self.test.circuit)})")
        for site, idx in self.kept.items():
            if site not in self.node_sites:
                raise ValueError(f"kept[{site!r}]: not a node site (node_sites lists {len(self.node_sites)})")
            if idx != sorted(set(idx)) or (idx and not 0 <= idx[0] <= idx[-1] < self.node_sites[site]):
                raise ValueError(f"kept[{site!r}] must be distinct ascending indices in 0..{self.node_sites[site] - 1}")
        total = sum(len(i) for i in self.kept.values())
        if self.n_nodes != total:
            raise ValueError(f"n_nodes is {self.n_nodes} but kept lists {total} nodes")
        if (self.n_edges is None) != (self.edge_slots is None):
            raise ValueError("n_edges and edge_slots are both set (weights exposed) or both None")
        if self.n_edges is not None and self.n_edges > self.edge_slots:
            raise ValueError(f"n_edges {self.n_edges} exceeds edge_slots {self.edge_slots}")
        self._restarts_consistent()
        self._issue_14_consistent()
        return self

    def _issue_14_consistent(self) -> None:
        n = len(self.test.circuit)
        if self.control is not None:
            if self.curve is None or len(self.control.learned) != len(self.curve.sizes):
                raise ValueError("control.learned needs one row per curve size (and the curve)")
            if {len(self.control.flip), len(self.control.circuit), *map(len, self.control.learned)} != {n}:
                raise ValueError(f"control: one value per test prompt ({n}) in flip, circuit and every learned row")
        if self.regimes is not None:
            if len(self.regimes.short) != n:
                raise ValueError(f"regimes.short: one flag per test prompt ({n}), got {len(self.regimes.short)}")
            reported = self.regimes.circuits["id"]
            if (reported.kept, reported.test) != (self.kept, self.test.circuit):
                raise ValueError("regimes.circuits['id'] must be the reported circuit (its kept nodes and test numbers)")
            for split, i in self.regimes.ood_prompts:
                if split not in self.ood or i >= len(self.ood[split].circuit):
                    raise ValueError(f"regimes.ood_prompts: ({split!r}, {i}) is not a test prompt of an OOD split in circuits.ood")

    def _restarts_consistent(self) -> None:
        if not self.restarts:
            if self.reported is not None:
                raise ValueError("reported names a restart, but restarts is empty")
            return
        if self.reported is None or self.reported >= len(self.restarts):
            raise ValueError(f"reported must index restarts (0..{len(self.restarts) - 1}), got {self.reported}")
        if self.curve is None:
            raise ValueError("restarts need the curve section (their learned rows are at its sizes)")
        for i, r in enumerate(self.restarts):
            for site, idx in r.kept.items():
                if site not in self.node_sites or idx != sorted(set(idx)) or (idx and not 0 <= idx[0] <= idx[-1] < self.node_sites[site]):
                    raise ValueError(f"restarts[{i}].kept[{site!r}] must be distinct ascending indices of a node site")
            if r.n_nodes != sum(len(idx) for idx in r.kept.values()):
                raise ValueError(f"restarts[{i}].n_nodes is {r.n_nodes} but its kept lists {sum(len(x) for x in r.kept.values())} nodes")
            if len(r.learned) != len(self.curve.sizes) or {len(r.circuit), len(r.complement), *map(len, r.learned)} != {len(self.test.circuit)}:
                raise ValueError(f"restarts[{i}] must hold one learned row per curve size and one value per test prompt in every row")
        chosen = self.restarts[self.reported]
        if (chosen.kept, chosen.circuit, chosen.complement, chosen.learned) != (self.kept, self.test.circuit, self.test.complement,
                                                                               self.curve.learned):
            raise ValueError(f"restarts[{self.reported}] (reported) must be the circuit kept, test and curve describe")


class Curve(Strict):
    """A robustness curve: per level, per prompt logit differences of the perturbed full model and
    of the perturbed circuit alone."""

    levels: list[float] = Field(min_length=1)  # perturbation strength, increasing
    model: list[list[float]]  # [level][prompt]
    circuit: list[list[float]]  # [level][prompt]

    @model_validator(mode="after")
    def _shape(self) -> Curve:
        if self.levels != sorted(self.levels):
            raise ValueError(f"levels {self.levels} must increase")
        if not len(self.levels) == len(self.model) == len(self.circuit):
            raise ValueError(f"{len(self.levels)} levels but model has {len(self.model)} rows and circuit {len(self.circuit)}")
        lengths = {len(row) for row in [*self.model, *self.circuit]}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"every level needs one value per prompt, the same prompts throughout; got lengths {sorted(lengths)}")
        return self


class StressSection(Strict):
    """Robustness curves on the test prompts (the clean points are circuits.test)."""

    seed: int  # every noise draw and dropout choice derives from it
    activation_noise: Curve  # levels: sigma in units of each node's standard deviation
    dropout: Curve  # levels: fraction of the circuit's nodes mean-ablated
    weight_noise: Curve | None  # levels: sigma in units of each matrix's nonzero-weight standard deviation; None: weights hidden
    distractors: Curve  # levels: neutral lines inserted into each test prompt


class SparsityPoint(Strict):
    """Activation sparsity of one split at one site (means over prompts' last tokens)."""

    hoyer: float
    top_k_energy: float
    kurtosis: float
    effective_rank: float
    n: int = Field(ge=1)


class SparsityAxis(Strict):
    """Sparsity along one OOD axis: level 0 is the test split. A diagnostic, not scored."""

    levels: list[int] = Field(min_length=2)
    stats: list[SparsityPoint]
    slopes: dict[str, float]  # metric -> least-squares slope against level

    @model_validator(mode="after")
    def _one_per_level(self) -> SparsityAxis:
        if len(self.stats) != len(self.levels):
            raise ValueError(f"{len(self.levels)} levels but {len(self.stats)} stats")
        return self


class ScoreEstimate(Strict):
    value: float
    low: float  # 2.5th bootstrap percentile
    high: float  # 97.5th


# Every verdict label, in one place. A task's: FRACTURED / coherent / inconclusive are decided from C's interval
# (D's interval above D_HIGH); the rest say why there is no such verdict. A model's takes the same labels
# (docs/metrics.md, "Verdict").
VerdictLabel = Literal["FRACTURED", "coherent", "inconclusive", "does not decode", "no behaviour", "not scored"]
FRACTURED, COHERENT, INCONCLUSIVE, DOES_NOT_DECODE, NO_BEHAVIOUR, NOT_SCORED = VerdictLabel.__args__


class TaskScores(Strict):
    """Scores as fracbench.scoring computed them from this file's raw numbers (readers recompute)."""

    version: str  # scoring.SCORES_VERSION
    D: ScoreEstimate | None  # None without probes
    C: ScoreEstimate | None  # None without a circuit (or when the model shows no behaviour to explain)
    F: ScoreEstimate | None  # D - C
    components: dict[str, float | None]  # faithfulness, compactness, specificity, stress, ood
    verdict: VerdictLabel
    reasons: list[str]  # cue reliance when shown, the failing components, or why there is no verdict
    cue_reliance: ScoreEstimate | None = None  # accuracy with the cue agreeing minus flipped; None without the cue splits
    relies_on_cue: bool = False  # cue_reliance's 95% lower bound above scoring.CUE_RELIANCE_MIN
    G: ScoreEstimate | None = None  # behavioural generalization OOD (scoring.generalization); beside D and C, not in C
