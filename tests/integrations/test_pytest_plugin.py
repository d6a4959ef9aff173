"""The pytest plugin, driven through pytester (runs that load a model in a subprocess: torch registers its
operator libraries once per process): generated checks for a model that passes and one that fails, users'
own checks through the fixtures and marker, the results file, and the options' help."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

OWN_CHECKS = """
import pytest

@pytest.mark.fracbench
def test_dict_or_list_is_not_fractured(fracbench_results):
    assert not fracbench_results.task("dict_or_list").fractured

def test_the_model_is_loaded_behind_the_adapter(fracbench_model):
    assert fracbench_model.info.n_layers >= 1
"""
FAST = ["--fracbench-tasks", "dict_or_list", "--fracbench-n", "64", "--fracbench-n-train", "128", "--fracbench-restarts", "2",
        "-p", "no:cacheprovider"]
GENERATED = [f"*dict_or_list::{check}*" for check in ("behaviour", "decodability", "faithfulness", "stress", "reuse", "selectivity", "ood",
                                                       "verdict")]


def test_options_show_under_a_fracbench_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["fracbench: decodability vs coherent organization of a model:", "*--fracbench-model=SPEC*",
                                 "*--fracbench-tasks=NAMES*", "*--fracbench-out=FILE*"])


def test_without_a_model_nothing_is_generated_and_marked_tests_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(OWN_CHECKS)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*needs a model: pytest --fracbench-model SPEC*"])


@pytest.mark.slow
def test_a_model_that_is_coherent_on_the_task_passes_every_check_and_the_results_are_written(pytester: pytest.Pytester) -> None:
    """The compiled model does bracket_depth on a circuit set by hand (coherent by construction)."""
    pytester.makepyfile(OWN_CHECKS.replace("dict_or_list", "bracket_depth"))
    out = pytester.path / "results.json"
    fast = [a.replace("dict_or_list", "bracket_depth") for a in FAST]
    result = pytester.runpytest_subprocess("-v", "--fracbench-model", "zoo:compiled", *fast, "--fracbench-out", str(out))
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines(["fracbench: model zoo:compiled, tasks bracket_depth, n 64, seed 0",
                                 *(g.replace("dict_or_list", "bracket_depth") for g in GENERATED)], consecutive=False)
    written = json.loads(out.read_text())
    assert written["model"]["name"] == "zoo:compiled" and list(written["tasks"]) == ["bracket_depth"]


@pytest.mark.slow
def test_the_random_model_fails_every_check_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(OWN_CHECKS)
    result = pytester.runpytest_subprocess("--fracbench-model", "zoo:random", *FAST)
    result.assert_outcomes(failed=8, passed=2)  # its own checks: not FRACTURED (it does not decode), and it loads
    result.stdout.fnmatch_lines(["*dict_or_list behaviour: test accuracy * is not above chance 0.5*",
                                 "*dict_or_list decodability: D * not above 0.5*",
                                 "*dict_or_list faithfulness: no faithfulness score: the model shows no behaviour*",
                                 "*dict_or_list verdict: does not decode*"], consecutive=False)


def test_a_bad_option_stops_the_session_with_fracbench_s_message(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fracbench-model", "zoo:nonesuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fracbench: unknown zoo model 'nonesuch'*"])
    result = pytester.runpytest("--fracbench-tasks", "nonesuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fracbench: --fracbench-tasks: unknown task 'nonesuch'*"])
    result = pytester.runpytest_subprocess("--fracbench-model", "zoo:dense", "--fracbench-restarts", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fracbench: restarts (--fracbench-restarts) must be at least 1 search, got 0*"])
    result = pytester.runpytest_subprocess("--fracbench-model", "zoo:dense", "--fracbench-ranking", "eap-ig", "--fracbench-restarts", "5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fracbench: ranking eap-ig (--fracbench-ranking) is deterministic: its 5 restarts "
                                 "(--fracbench-restarts) would all be one circuit*"])
    result = pytester.runpytest_subprocess("--fracbench-model", "zoo:dense", "--fracbench-n-train", "0")  # 0 is not "the default"
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fracbench: n_train (--fracbench-n-train) must be at least 2 train examples*"])
