"""The runner: behaviour on every split, determinism, and results files that exist only when complete."""

from __future__ import annotations

import json
import re
import sys
import types
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fracbench import report, runner
from fracbench.config import RunConfig
from fracbench.evaluate import evaluate
from fracbench.jobs import JOBS_DIR
from fracbench.models import ModelSpec, load_model, resolve_model, zoo
from fracbench.models.native import NativeAdapter
from fracbench.results import read_results, record_document, results_json
from fracbench.tasks import TASKS, get_task

N = 3  # examples per split: enough to exercise everything, small enough to be fast


@pytest.mark.parametrize("name", TASKS.names())
def test_evaluate_covers_test_and_every_ood_split(tiny_adapter: NativeAdapter, name: str) -> None:
    task = get_task(name)
    result = evaluate(tiny_adapter, task, RunConfig(n_test=N, seed=0, batch_size=2, probes=False), progress=False)
    expected = {s.name: s for s in task.splits() if s.name != "train"}
    assert set(result.behaviour) == set(expected)
    assert result.version == task.version
    for split, b in result.behaviour.items():
        assert (b.ood_axis, b.level) == (expected[split].axis, expected[split].level)
        assert b.n == len(b.logit_diffs) == result.n_examples[split] == N
        assert b.accuracy == sum(d > 0 for d in b.logit_diffs) / N
        assert b.mean_logit_diff == pytest.approx(sum(b.logit_diffs) / N, abs=1e-12)


def test_evaluate_is_deterministic_in_the_seed(tiny_adapter: NativeAdapter) -> None:
    task = get_task("bracket_depth")

    def diffs(seed: int, batch_size: int) -> dict[str, list[float]]:
        result = evaluate(tiny_adapter, task, RunConfig(n_test=N, seed=seed, batch_size=batch_size, probes=False))
        return {s: b.logit_diffs for s, b in result.behaviour.items()}

    assert diffs(0, 2) == diffs(0, 2)
    assert diffs(0, 2) != diffs(1, 2)  # another seed draws other examples


def spy_on_loading(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every model load (and still load it)."""
    calls: list[str] = []
    real = ModelSpec.load

    def load(self: ModelSpec, device: str = "cpu"):
        calls.append(self.target)
        return real(self, device)

    monkeypatch.setattr(ModelSpec, "load", load)
    return calls


def test_run_records_the_ablation_it_was_asked_for_and_refuses_unknown_kinds(tmp_path: Path, tiny_zoo: Path) -> None:
    config = RunConfig(tasks="quote_close", n_test=N, seed=0, batch_size=4, n_train=24, ablation="positional_mean", restarts=1)
    result, _ = runner.run("dense", config, tmp_path / "a", progress=False)
    assert result.tasks["quote_close"].circuits.ablation == "positional_mean"
    with pytest.raises(ValueError, match="ablation must be one of 'positional_mean', 'mean', got 'zero'"):
        runner.run("dense", RunConfig(tasks="quote_close", n_test=N, ablation="zero"), tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


def test_run_writes_a_complete_results_file(tmp_path: Path, tiny_zoo: Path, tiny_adapter: NativeAdapter) -> None:
    out_dir = tmp_path / "results"
    config = RunConfig(tasks="quote_close,copy_name", n_test=N, seed=7, batch_size=2, n_train=24)
    result, path = runner.run("dense", config, out_dir, progress=False, command=["fracbench", "run"])
    assert re.fullmatch(r"zoo-dense-\d{8}T\d{6}Z\.json\.xz", path.name)
    figure, coherence, erasure = (runner.figure_path(path), runner.figure_path(path, "coherence"),
                                  runner.figure_path(path, "erasure"))
    stem = path.name.removesuffix(".json.xz")
    assert figure.name == stem + "-decodability.png" and coherence.name == stem + "-coherence.png"
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([path.name, figure.name, coherence.name, erasure.name])
    assert all(f.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for f in (figure, coherence, erasure))
    assert read_results(path) == result
    document = json.loads(results_json(path.read_bytes()))
    assert record_document(document) == document  # every per-item number as schema 11 records it (3 significant digits)
    for task in result.tasks.values():
        assert task.probes is not None and task.n_examples["train"] == 24
        assert task.circuits is not None and task.circuits.n_search_examples == 12 and task.sparsity is not None
        assert task.scores is not None and task.scores.verdict == "does not decode"  # the untrained tiny model
    assert set(result.specificity) <= {"quote_close", "copy_name"}
    assert list(result.tasks) == ["quote_close", "copy_name"]
    timings = result.provenance.timings
    assert set(timings.tasks) == set(timings.stages) == {"quote_close", "copy_name"}
    assert timings.total >= sum(timings.tasks.values()) + timings.specificity
    for name, stages in timings.stages.items():  # each task's stages, in the order they ran, add up to no more than the task
        assert list(stages) == ["behaviour", "token_pruning", "probes", "erasure", "circuit_search", "circuit_faithfulness", "circuit_ood",
                                "stress", "sparsity"]  # the untrained model shows no behaviour: no control task, no regimes
        assert sum(stages.values()) <= timings.tasks[name]
    assert all(t.circuits.ablation == "mean" for t in result.tasks.values())
    assert result.provenance.seeds == {"examples": 7, "probes": 7, "circuits": 7} and result.provenance.command == ["fracbench", "run"]
    assert (result.provenance.device, result.provenance.dtype) == ("cpu", "float32")
    assert result.model.name == "zoo:dense" and result.model.weights_sha256 == tiny_adapter.info.weights_sha256
    assert result.provenance.packages.python == ".".join(map(str, sys.version_info[:3]))


def test_run_into_an_unwritable_directory_fails_before_loading(tmp_path: Path, tiny_zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = spy_on_loading(monkeypatch)
    work = tmp_path / "work"
    work.mkdir()
    (work / "a-file").write_text("")
    with pytest.raises(PermissionError, match="cannot write files into"):
        runner.run("dense", RunConfig(tasks="quote_close", n_test=N), work / "a-file" / "out", progress=False)
    assert loads == []
    assert [p.name for p in work.iterdir()] == ["a-file"]


def test_an_eap_ig_ranking_runs_one_search_and_is_recorded(tmp_path: Path, tiny_zoo: Path) -> None:
    """EAP-IG is deterministic: left unset, restarts become 1; asked for more, the run is refused before any work."""
    config = RunConfig(tasks="quote_close", n_test=N, batch_size=4, n_train=24, ranking="eap-ig")
    assert config.restarts == 1 and RunConfig().ranking == "masks"
    result, _ = runner.run("dense", config, tmp_path / "a", progress=False)
    assert result.provenance.config.ranking == "eap-ig" and result.provenance.config.restarts == 1
    assert read_results(next((tmp_path / "a").glob("*.json.xz"))).provenance.config == result.provenance.config
    with pytest.raises(ValueError, match=r"ranking eap-ig \(--ranking\) is deterministic: its 5 restarts \(--restarts\) would all be one circuit; give restarts 1"):
        runner.run("dense", RunConfig(tasks="quote_close", n_test=N, ranking="eap-ig", restarts=5), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match=r"ranking \(--ranking\) must be one of 'masks', 'eap-ig', got 'eap'"):
        runner.run("dense", RunConfig(tasks="quote_close", ranking="eap"), tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


def test_bad_settings_and_names_fail_before_loading(tmp_path: Path, tiny_zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = spy_on_loading(monkeypatch)
    with pytest.raises(ValueError, match="at least 1 example per split, got 0"):
        runner.run("dense", RunConfig(n_test=0), tmp_path)
    with pytest.raises(KeyError, match="did you mean 'quote_close'"):
        runner.run("dense", RunConfig(tasks="quote_close,qoute_close"), tmp_path)
    with pytest.raises(KeyError, match="did you mean 'dense'"):
        runner.run("dens", RunConfig(), tmp_path)
    with pytest.raises(ValueError, match=r"n_train \(--n-train\) must be at least 2"):
        runner.run("dense", RunConfig(n_train=1), tmp_path)
    RunConfig(n_test=1, batch_size=1, probes=False, n_train=1)  # no probes: n_train is not checked
    assert loads == []


def test_evaluate_measures_decodability_unless_told_not_to(tiny_adapter: NativeAdapter) -> None:
    task = get_task("dict_or_list")
    result = evaluate(tiny_adapter, task, RunConfig(n_test=6, seed=0, n_train=20))
    assert result.n_examples["train"] == 20 and result.n_examples["test"] == 6
    assert list(result.probes.latents) == ["container"]
    assert set(result.probes.latents["container"].transfer) == {s.name for s in task.splits() if s.is_ood}
    assert evaluate(tiny_adapter, task, RunConfig(n_test=6, seed=0, probes=False)).probes is None


@pytest.mark.parametrize("failing", ["figure", "results", "rename"])
def test_a_failed_write_leaves_neither_results_nor_figure(tmp_path: Path, tiny_zoo: Path, monkeypatch: pytest.MonkeyPatch,
                                                           failing: str) -> None:
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing == "figure":
        monkeypatch.setattr(report, "plot_decodability", fail)
    elif failing == "results":
        monkeypatch.setattr(runner, "write_results", fail)
    else:
        real = runner.os.replace
        monkeypatch.setattr(runner.os, "replace", lambda src, dst: fail() if str(dst).endswith(".png") else real(src, dst))
    out_dir = tmp_path / "results"
    with pytest.raises(OSError, match="No space left"):
        runner.run("dense", RunConfig(tasks="dict_or_list", n_test=4, n_train=16), out_dir, progress=False)
    assert [p.name for p in out_dir.iterdir()] == [JOBS_DIR]  # no results file or figure; the measured task, kept to resume


def test_results_files_never_overwrite_each_other(tmp_path: Path) -> None:
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    first = runner.results_path(tmp_path, "hf:/models/pythia-70m", created)
    assert first.name == "hf-models-pythia-70m-20250102T030405Z.json.xz"
    first.write_text("{}")
    assert runner.results_path(tmp_path, "hf:/models/pythia-70m", created).name == "hf-models-pythia-70m-20250102T030405Z-2.json.xz"


def test_behaviour_table_shows_every_task_and_ood_level_within_100_columns(tmp_path: Path, tiny_zoo: Path) -> None:
    result, _ = runner.run("dense", RunConfig(n_test=2, probes=False), tmp_path / "results", progress=False)
    table = report.behaviour_table(result)
    assert max(map(len, table.splitlines())) <= 100
    for name, task in result.tasks.items():
        row = next(line for line in table.splitlines() if line.startswith(name + " "))
        assert f"{task.behaviour['test'].accuracy:.3f}" in row
        for axis in TASKS[name].ood_axes:
            levels = "/".join(f"{task.behaviour[f'ood/{axis.name}/{lvl}'].accuracy:.2f}" for lvl in range(1, axis.n_levels + 1))
            assert f"{axis.name} {levels}" in table


# -- model specs (fracbench.models.load_model) ----------------------------------------


def test_zoo_specs_load_the_checkpoint(tiny_zoo: Path, tiny_adapter: NativeAdapter) -> None:
    for spec in ("zoo:dense", "dense"):
        adapter = load_model(spec)
        assert adapter.info.name == "zoo:dense"
        assert adapter.info.weights_sha256 == tiny_adapter.info.weights_sha256


@pytest.mark.parametrize("spec", ["nope", "zoo:nope", "zo:dense"])
def test_an_unknown_model_spec_lists_the_forms_and_the_zoo(spec: str) -> None:
    with pytest.raises((KeyError, ValueError)) as info:
        load_model(spec)
    message = str(info.value)
    assert "hf:pretrained=PATH" in message
    assert all(name in message for name in zoo.RECIPES.names())


def test_a_misspelled_zoo_name_gets_a_suggestion() -> None:
    with pytest.raises(KeyError, match="did you mean 'sparse'"):
        load_model("zoo:sprase")


@pytest.mark.parametrize("spec", ["hf:/no/such/model", "hf:pretrained=/no/such/model,dtype=bfloat16"])
def test_a_missing_hf_directory_is_not_downloaded(spec: str) -> None:
    with pytest.raises(FileNotFoundError, match="'/no/such/model' does not exist; fracbench never downloads"):
        load_model(spec)


def test_hf_specs_reach_from_pretrained_with_path_and_dtype(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def from_pretrained(path: str, device: str, dtype: str) -> str:
        calls.append((path, device, dtype))
        return "adapter"

    fake = types.SimpleNamespace(HFAdapter=types.SimpleNamespace(from_pretrained=from_pretrained))
    monkeypatch.setitem(sys.modules, "fracbench.models.hf", fake)
    assert load_model(f"hf:{tmp_path}") == "adapter"
    assert load_model(f"hf:pretrained={tmp_path},dtype=bfloat16") == "adapter"
    assert load_model(f"hf:pretrained={tmp_path}", dtype="float16") == "adapter"
    assert calls == [(str(tmp_path), "cpu", dtype) for dtype in ("float32", "bfloat16", "float16")]


def test_malformed_hf_args_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown hf model arg 'revision'"):
        resolve_model(f"hf:pretrained={tmp_path},revision=main")
    with pytest.raises(ValueError, match="dtype 'float8' is not supported"):
        resolve_model(f"hf:pretrained={tmp_path},dtype=float8")
    with pytest.raises(ValueError, match="given twice and differently"):
        resolve_model(f"hf:pretrained={tmp_path},dtype=bfloat16", dtype="float16")


def test_cuda_without_cuda_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available.*--device cpu"):
        load_model("zoo:dense", device="cuda")


def test_provenance_records_the_dtype_an_hf_spec_asks_for(tmp_path: Path, monkeypatch, tiny_adapter: NativeAdapter) -> None:
    fake = types.SimpleNamespace(HFAdapter=types.SimpleNamespace(from_pretrained=lambda path, device, dtype: tiny_adapter))
    monkeypatch.setitem(sys.modules, "fracbench.models.hf", fake)
    spec = f"hf:pretrained={tmp_path},dtype=bfloat16"
    result, _ = runner.run(spec, RunConfig(tasks="quote_close", n_test=1, probes=False), tmp_path / "results", progress=False)
    assert result.provenance.dtype == "bfloat16"


def test_the_number_of_restarts_is_checked_before_any_work(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"restarts \(--restarts\) must be at least 1"):
        runner.run("dense", RunConfig(restarts=0), tmp_path)
    assert not any(tmp_path.iterdir())
