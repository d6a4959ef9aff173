"""The pytest plugin (entry point ``pytest11: fracbench``): a model's fracbench checks as tests.

``pytest --fracbench-model SPEC [--fracbench-tasks NAMES]`` adds one test per (task, check): behaviour,
decodability, faithfulness, stress, ood and verdict, each against the suite's threshold (docs/metrics.md). The
model is run once, lazily, for every selected task; ``--fracbench-out FILE`` writes that results file at the end.
Users' own tests get the ``fracbench_results`` and ``fracbench_model`` fixtures and the ``fracbench`` marker
(skipped, with a message, when no model is given)::

    @pytest.mark.fracbench
    def test_bracket_depth_is_not_fractured(fracbench_results):
        assert not fracbench_results.task("bracket_depth").fractured
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..config import DEFAULT_RANKING, N_TEST, RANKINGS  # pydantic and the task registry, no torch

if TYPE_CHECKING:  # the plugin loads in every pytest session: fracbench itself is imported only when a run is asked for
    from ..results.coherence import VerdictLabel

CHECKS = ("behaviour", "decodability", "faithfulness", "stress", "reuse", "selectivity", "ood", "verdict")
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fracbench", "fracbench: decodability vs coherent organization of a model")
    group.addoption("--fracbench-model", metavar="SPEC", help="run fracbench's checks on this model (zoo:NAME, hf:PATH, "
                    "hf:pretrained=PATH,dtype=...): one test per task and check")
    group.addoption("--fracbench-tasks", default="all", metavar="NAMES", help="'all' or comma-separated task names (default: all)")
    group.addoption("--fracbench-out", metavar="FILE", help="write the run's results file here at the end of the session")
    group.addoption("--fracbench-n", type=int, default=N_TEST, metavar="N", help=f"examples per split (default: {N_TEST})")
    group.addoption("--fracbench-n-train", type=int, default=None, metavar="N", help="train examples for the probes "
                    "(default: fracbench run's)")
    group.addoption("--fracbench-restarts", type=int, default=None, metavar="R", help="restarts of the circuit search "
                    "(default: fracbench run's; the board takes no fewer)")
    group.addoption("--fracbench-ranking", default=DEFAULT_RANKING, choices=RANKINGS, help="what ranks a circuit's nodes: "
                    f"learned masks or EAP-IG attributions (default: {DEFAULT_RANKING}; eap-ig searches once)")
    group.addoption("--fracbench-seed", type=int, default=0, metavar="SEED", help="seed of the examples (default: 0)")
    group.addoption("--fracbench-device", default="cpu", metavar="DEVICE", help="cpu or cuda (default: cpu)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fracbench: needs a fracbench run of --fracbench-model (skipped without one)")
    config.stash[_SESSION] = FracbenchSession(config)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The generated checks go first, one per (task, check), when a model is given."""
    state = config.stash[_SESSION]
    if state.spec is None:
        for item in items:
            if item.get_closest_marker("fracbench"):
                item.add_marker(pytest.mark.skip(reason="needs a model: pytest --fracbench-model SPEC"))
        return
    suite = FracbenchSuite.from_parent(session, name=f"fracbench[{state.spec}]")
    items[:0] = list(suite.collect())


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_SESSION, None)
    if state is not None and state.out is not None and state.result is not None:
        from ..results import write_results

        write_results(state.result, state.out)


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[_SESSION]
    if state.spec is None:
        return []
    return [f"fracbench: model {state.spec}, tasks {', '.join(state.tasks)}, n {state.n}, seed {state.seed}"]


class FracbenchSession:
    """The options, checked once, and the run, made on first use and shared by every test."""

    def __init__(self, config: pytest.Config) -> None:
        from ..config import DEFAULT_RESTARTS, N_TRAIN
        from ..tasks import resolve_tasks

        opt = config.getoption
        self.spec: str | None = opt("--fracbench-model")
        try:
            self.tasks = [t.name for t in resolve_tasks(opt("--fracbench-tasks"))]
        except KeyError as err:
            raise pytest.UsageError(f"fracbench: --fracbench-tasks: {err.args[0]}") from None
        self.n, self.seed, self.device = opt("--fracbench-n"), opt("--fracbench-seed"), opt("--fracbench-device")
        # None is "fracbench run's default"; a given 0 stays 0, so that the check below refuses it
        self.n_train = N_TRAIN if opt("--fracbench-n-train") is None else opt("--fracbench-n-train")
        self.ranking = opt("--fracbench-ranking")
        given = opt("--fracbench-restarts")  # unset: fracbench run's default for the ranking (eap-ig searches once)
        self.restarts = given if given is not None else 1 if self.ranking == "eap-ig" else DEFAULT_RESTARTS
        self.out = Path(opt("--fracbench-out")) if opt("--fracbench-out") else None
        self.progress = opt("capture") == "no"  # progress bars only where pytest shows output (-s)
        self.result = None
        self._results: FracbenchResults | None = None
        self._model = None
        if self.spec is not None:
            self._check()

    def _check(self) -> None:
        """Bad options fail the session at once, with fracbench's own message."""
        from ..config import RunConfig
        from ..models import check_device, resolve_model
        from ..results import check_writable

        try:
            self.run_config = RunConfig(tasks=self.tasks, n_test=self.n, seed=self.seed, n_train=self.n_train, restarts=self.restarts,
                                        ranking=self.ranking, device=self.device).check()
            check_device(self.device)
            resolve_model(self.spec)
            if self.out is not None:
                check_writable(self.out.parent)
        except (KeyError, ValueError, OSError) as err:
            # the settings' messages name fracbench run's options (--n, --n-train, --restarts): here they are --fracbench-*
            message = str(err.args[0] if isinstance(err, KeyError) else err).replace("(--", "(--fracbench-")
            raise pytest.UsageError(f"fracbench: {message}") from None

    def results(self) -> FracbenchResults:
        if self._results is None:
            from ..runner import run

            with tempfile.TemporaryDirectory() as scratch:
                self.result, _ = run(self.spec, self.run_config, scratch, progress=self.progress,
                                     command=["pytest", "--fracbench-model", self.spec])
            self._results = FracbenchResults(self.result)
        return self._results

    def model(self):
        if self._model is None:
            from ..models import load_model

            self._model = load_model(self.spec, self.device)
        return self._model


_SESSION = pytest.StashKey[FracbenchSession]()


# -- what tests read -------------------------------------------------------------------


@dataclass(frozen=True)
class TaskOutcome:
    """One task's recomputed scores, as a test reads them."""

    name: str
    verdict: VerdictLabel  # scoring's three-way verdict, or why there is none (fracbench.results.coherence.VerdictLabel)
    reasons: list[str]
    D: float | None
    D_low: float | None  # D's 95% lower bound: decoding is decided on it
    C: float | None
    F: float | None
    components: dict[str, float | None]
    accuracy: float  # test-split behaviour accuracy
    n: int  # test examples
    circuit: str | None  # why there is no circuit to score (None: one was searched)

    @property
    def fractured(self) -> bool:
        return self.verdict == "FRACTURED"

    @property
    def coherent(self) -> bool:
        return self.verdict == "coherent"


class FracbenchResults:
    """The session's run: ``.result`` (the results document) and ``.task(name)`` (its recomputed scores)."""

    def __init__(self, result) -> None:
        from ..scoring import verdict

        self.result = result
        self.verdicts = {name: verdict(result, name) for name in result.tasks}

    def task(self, name: str) -> TaskOutcome:
        if name not in self.verdicts:
            raise KeyError(f"task {name!r} was not run; run it with --fracbench-tasks (run: {', '.join(self.verdicts)})")
        v, t = self.verdicts[name], self.result.tasks[name]
        value = lambda e: None if e is None else e.value  # noqa: E731
        if t.circuits is None:
            circuit = "the run had no circuits"
        elif t.circuits.search_sufficiency is None:
            circuit = "the model shows no behaviour beyond the all-ablated model for a circuit to explain"
        else:
            circuit = None
        return TaskOutcome(name, v.verdict, list(v.reasons), value(v.D), None if v.D is None else v.D.low, value(v.C), value(v.F),
                           dict(v.components), t.behaviour["test"].accuracy, t.behaviour["test"].n, circuit)


@pytest.fixture(scope="session")
def fracbench_results(request: pytest.FixtureRequest) -> FracbenchResults:
    """The fracbench run of ``--fracbench-model`` on ``--fracbench-tasks`` (made once per session)."""
    state = request.config.stash[_SESSION]
    if state.spec is None:
        pytest.skip("needs a model: pytest --fracbench-model SPEC")
    return state.results()


@pytest.fixture(scope="session")
def fracbench_model(request: pytest.FixtureRequest):
    """``--fracbench-model`` loaded behind fracbench's adapter interface (a ``ModelAdapter``)."""
    state = request.config.stash[_SESSION]
    if state.spec is None:
        pytest.skip("needs a model: pytest --fracbench-model SPEC")
    return state.model()


# -- the generated checks ----------------------------------------------------------------


class FracbenchSuite(pytest.Collector):
    def collect(self):
        state = self.config.stash[_SESSION]
        for task in state.tasks:
            for check in CHECKS:
                yield FracbenchCheck.from_parent(self, name=f"{task}::{check}", task=task, check=check)


class FracbenchCheck(pytest.Item):
    """One (task, check): passes when the model meets the suite's threshold for it."""

    def __init__(self, *, task: str, check: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.task, self.check = task, check
        self.add_marker(pytest.mark.fracbench)

    def runtest(self) -> None:
        outcome = self.config.stash[_SESSION].results().task(self.task)
        problem = failure(self.check, outcome)
        if problem is not None:
            raise CheckFailed(problem)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CheckFailed):
            return f"{self.task} {self.check}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"fracbench {self.task}::{self.check}"


class CheckFailed(AssertionError):
    """A check below its threshold; the message says by how much and why."""


def failure(check: str, t: TaskOutcome) -> str | None:
    """None when ``t`` passes ``check``, else why not. Thresholds are the suite's (fracbench.scoring)."""
    from ..scoring import C_LOW, COMPONENT_LOW, D_HIGH

    if check == "behaviour":
        low = wilson_low(t.accuracy, t.n)
        return None if low > 0.5 else f"test accuracy {t.accuracy:.3f} (n {t.n}, 95% lower bound {low:.3f}) is not above chance 0.5"
    if check == "decodability":
        if t.D is None:
            return "no D: the run had no probes"
        # scores version 6: the interval must lie above D_high, not end on it
        return None if t.D_low > D_HIGH else f"D {t.D:.3f} with 95% lower bound {t.D_low:.3f}, not above {D_HIGH}"
    if check in ("faithfulness", "stress", "reuse", "selectivity", "ood"):
        value = t.components.get(check)
        if value is None and check == "ood" and t.circuit is None:
            return ("no ood score: on no OOD split does the model keep its behaviour with the latents still decoding "
                    "(docs/metrics.md, scores version 3)")
        if value is None:
            return f"no {check} score: {t.circuit or 'the component is undefined'}"
        return None if value >= COMPONENT_LOW else f"{check} {value:.3f} is below {COMPONENT_LOW}"
    if check == "verdict":
        return None if t.coherent else f"{t.verdict} (C {'-' if t.C is None else f'{t.C:.3f}'}, threshold {C_LOW}): {'; '.join(t.reasons)}"
    raise ValueError(f"unknown check {check!r}; checks: {', '.join(CHECKS)}")


def wilson_low(p: float, n: int, z: float = Z95) -> float:
    """The Wilson score interval's lower bound for a proportion ``p`` of ``n``."""
    if n == 0:
        return 0.0
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)
