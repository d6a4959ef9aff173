"""The project's own board (leaderboard/ at the repository root): every entry checks, and the committed site
is what `fracbench leaderboard build leaderboard` makes from it now."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fracbench.leaderboard import entries, validate_submission
from fracbench.config import DEFAULT_RESTARTS
from fracbench.leaderboard.validate import MIN_RESTARTS
from fracbench.models import zoo
from fracbench.results import record_document, results_json
from fracbench.scoring import paired_model_difference

from .conftest import BOARD

pytestmark = pytest.mark.xdist_group("board")  # the board and site fixtures (per session) built once, on one xdist worker

TEXT = (".html", ".json", ".md")  # figures are compared by name only: their bytes depend on matplotlib's version


def test_the_project_board_holds_the_known_answer_models_and_checks(project_board) -> None:
    """Every zoo model `fracbench run` evaluates by default (the trained recipes and the models of known organization);
    other zoo models, training seeds and the
    rotated twins of the dense and sparse models (basis sensitivity) where they were run; nothing else. Every entry
    checks: loading the board (the fixture) re-validates each one and raises, naming the bad ones, otherwise."""
    board = project_board
    names = sorted(e.result.model.name for e in board)
    twins = [f"zoo:{n} (rotated twin, seed 0)" for n in ("dense", "sparse")]
    assert len(entries(BOARD)) == len(board) == len(set(names))
    assert {f"zoo:{n}" for n in zoo.reference_models()} <= set(names) <= {f"zoo:{n}" for n in zoo.RECIPES} | set(twins)
    assert all(not e.partial for e in board)


def test_magnitude_pruning_without_retraining_earns_no_coherence_on_the_board(project_board) -> None:
    """The known answer as docs/metrics.md states it, on the board's full runs (n = 512, five restarts, every task): the
    paired model-level difference C(pruned) - C(dense) has a 95% interval reaching 0 or below. The board recomputes
    every score from the stored measurements, so this pins the scoring of them, not the measurement."""
    runs = {e.result.model.name: e.result for e in project_board}
    difference = paired_model_difference(runs["zoo:dense"], runs["zoo:pruned"])
    assert difference.low <= 0, difference
    same = paired_model_difference(runs["zoo:dense"], runs["zoo:dense"])
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)  # paired: a file against itself differs in no replicate


def test_no_trained_recipe_is_fractured_at_model_level_and_weight_sparse_circuits_have_fewer_edges(project_board) -> None:
    """Two known answers on the board's full runs: scores version 2 flagged all three trained models FRACTURED at model
    level (issue 13, finding 8), and Gao et al.'s weight-sparse circuits have at least 2x fewer edges than dense ones at
    the same faithfulness target (geometric mean over tasks; fewer on every task)."""
    runs = {e.result.model.name: e for e in project_board}
    verdicts = {name: runs[f"zoo:{name}"].scores.verdict for name in ("dense", "sparse", "shortcut")}
    assert "FRACTURED" not in verdicts.values(), verdicts
    dense, sparse = runs["zoo:dense"].result.tasks, runs["zoo:sparse"].result.tasks
    ratios = [dense[t].circuits.n_edges / sparse[t].circuits.n_edges for t in dense]
    assert math.exp(sum(map(math.log, ratios)) / len(ratios)) >= 2 and min(ratios) > 1, ratios


def test_the_committed_site_is_up_to_date(project_site: Path) -> None:
    fresh = project_site
    committed = BOARD / "site"
    names = sorted(str(p.relative_to(fresh)) for p in fresh.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(committed)) for p in committed.rglob("*") if p.is_file())
    stale = [n for n in names if n.endswith(TEXT) and (fresh / n).read_bytes() != (committed / n).read_bytes()]
    assert not stale, f"rebuild the site: fracbench leaderboard build leaderboard (stale: {stale})"


def test_leaderboard_json_holds_scores_rounded_so_that_any_cpu_builds_the_same_bytes() -> None:
    from fracbench.leaderboard.table import DECIMALS

    numbers: list[float] = []

    def walk(x) -> None:
        if isinstance(x, float):
            numbers.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(json.loads((BOARD / "site" / "leaderboard.json").read_text())["entries"])
    assert numbers and all(round(x, DECIMALS) == x for x in numbers)
    assert any(round(x, 6) != x for x in numbers)  # rounded, not truncated to the table's two digits


def test_dropping_a_stress_curve_or_an_ood_circuit_split_from_a_real_entry_is_refused(project_board) -> None:
    """Either would drop a term from C's mean; the board requires every one a searched circuit has."""
    dense = next(e for e in project_board if e.result.model.name == "zoo:dense")
    data = json.loads(results_json((BOARD / "submissions" / dense.submission).read_bytes()))
    task = data["tasks"]["bracket_depth"]
    task["stress"]["weight_noise"] = None  # the one kind the schema lets be missing (models without weights)
    pooled = {split for split, _ in task["circuits"]["regimes"]["ood_prompts"]}
    dropped = next(split for split in sorted(task["circuits"]["ood"]) if split not in pooled)  # one reuse does not pool
    del task["circuits"]["ood"][dropped]
    fields = {p.field for p in validate_submission(json.dumps(data).encode()).problems}
    assert fields == {"tasks.bracket_depth.stress.weight_noise", "tasks.bracket_depth.circuits.ood"}


def test_dropping_a_regime_or_the_control_or_choosing_their_prompts_is_refused(project_board) -> None:
    """Reuse and selectivity are in C: a submission that leaves out a regime circuit or the control task, flags other
    prompts as short or pools other OOD prompts would change C without the board noticing."""
    dense = next(e for e in project_board if e.result.model.name == "zoo:dense")
    original = json.loads(results_json((BOARD / "submissions" / dense.submission).read_bytes()))

    def problems(edit) -> set[str]:
        data = json.loads(json.dumps(original))
        edit(data["tasks"]["quote_close"]["circuits"])
        return {p.field for p in validate_submission(json.dumps(data).encode()).problems}

    assert "tasks.quote_close.circuits.regimes.circuits" in problems(lambda c: c["regimes"]["circuits"].pop("long"))
    assert "tasks.quote_close.circuits.control" in problems(lambda c: c.pop("control"))
    assert "tasks.quote_close.circuits.regimes.short" in problems(lambda c: c["regimes"]["short"].reverse())
    assert "tasks.quote_close.circuits.control.flip" in problems(lambda c: c["control"]["flip"].reverse())


def test_the_project_board_holds_every_restart_and_keeping_fewer_is_refused(project_board) -> None:
    """Fewer restarts would narrow C's interval (the restarts' spread is in it), so the board takes at least five."""
    dense = next(e for e in project_board if e.result.model.name == "zoo:dense")
    searched = [c for t in dense.result.tasks.values() if (c := t.circuits).search_sufficiency is not None]
    assert MIN_RESTARTS == DEFAULT_RESTARTS  # what fracbench run does by default is what the board takes
    assert searched and all(len(c.restarts) >= MIN_RESTARTS for c in searched)
    data = json.loads(results_json((BOARD / "submissions" / dense.submission).read_bytes()))
    circuits = data["tasks"]["bracket_depth"]["circuits"]
    circuits["restarts"], circuits["reported"] = [circuits["restarts"][circuits["reported"]]], 0  # only the reported circuit
    problems = validate_submission(json.dumps(data).encode()).problems
    assert any(p.field == "tasks.bracket_depth.circuits.restarts" and "at least 5" in p.message for p in problems), problems


def test_every_schema_11_entry_is_stored_as_fracbench_records_it(project_board) -> None:
    """Each schema 11 entry holds its per-item numbers at 3 significant digits, as `fracbench run` writes them: recording
    the stored document again changes nothing."""
    rebuilt = [e for e in project_board if e.result.since(11)]
    assert rebuilt, "the board holds no schema 11 entry"
    for entry in rebuilt:
        document = json.loads(results_json((BOARD / "submissions" / entry.submission).read_bytes()))
        assert record_document(document) == document, entry.result.model.name
