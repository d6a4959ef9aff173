"""lm-eval integration: the shipped task directory, its data, lm-eval's own CLI agreeing with fracbench's
behaviour numbers, the fracbench-hf model's recording, and `fracbench lm-eval` / `run --model_args`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fracbench.cli import main
from fracbench.config import RunConfig
from fracbench.integrations.lm_eval import task_dir
from fracbench.integrations.lm_eval.data import fracbench_split
from fracbench.integrations.lm_eval.generate import files, lm_eval_name
from fracbench.results import SCHEMA_VERSION, results_json
from fracbench.runner import run
from fracbench.tasks import TASKS, get_task

pytest.importorskip("lm_eval", reason="needs lm-eval: pip install -e '.[test]'")

N = 12  # examples per split: every split of every task stays fast on the tiny model


def lm_eval_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lm_eval", *args]


def test_the_shipped_task_directory_is_what_the_generator_writes() -> None:
    shipped = {p.name: p.read_text() for p in task_dir().iterdir()}
    assert shipped == files(), "regenerate it: python -m fracbench.integrations.lm_eval.generate"
    splits = sum(len(TASKS[name].splits()) - 1 for name in TASKS)  # every split but train
    assert len(shipped) == 1 + splits + len(TASKS) + 1  # template, splits, a group per task, the suite's group


def test_the_dataset_is_fracbench_s_own_examples_in_order() -> None:
    data = fracbench_split(fracbench_task="bracket_depth", fracbench_split="ood/deeper/2", fracbench_n=5, fracbench_seed=3,
                           pretrained="/some/model", config_source="x.yaml")  # lm-eval's metadata is accepted and ignored
    examples = get_task("bracket_depth").examples("ood/deeper/2", 5, 3)
    assert data["test"]["prompt"] == [e.prompt for e in examples]
    assert data["test"]["target"] == [e.target for e in examples] and data["test"]["foil"] == [e.foil for e in examples]


def test_lm_eval_s_cli_runs_the_fracbench_group_offline_and_agrees_with_fracbench(tiny_gpt2: Path, tmp_path: Path) -> None:
    out = tmp_path / "lm-eval"
    done = subprocess.run(lm_eval_command(
        "--model", "hf", "--model_args", f"pretrained={tiny_gpt2},dtype=float32", "--include_path", str(task_dir()),
        "--tasks", "fracbench", "--metadata", json.dumps({"fracbench_n": N, "fracbench_seed": 0}), "--device", "cpu",
        "--batch_size", "64", "--output_path", str(out)), capture_output=True, text=True, env=os.environ, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fracbench_quote_close_test" in done.stdout and "|fracbench" in done.stdout.replace(" ", "")
    scores = json.loads(next(out.rglob("results_*.json")).read_text())["results"]

    result, _ = run(f"hf:{tiny_gpt2}", RunConfig(n_test=N, seed=0, probes=False, circuits=False), tmp_path / "fracbench", progress=False)
    compared = 0
    for name, task in result.tasks.items():
        for split, behaviour in task.behaviour.items():
            assert scores[lm_eval_name(name, split)]["acc,none"] == pytest.approx(behaviour.accuracy, abs=1e-12), (name, split)
            compared += 1
    assert compared == sum(len(TASKS[name].splits()) - 1 for name in TASKS)
    assert len({round(s["acc,none"], 6) for k, s in scores.items() if k.startswith("fracbench_")}) > 3  # not all one number


def test_fracbench_hf_records_fracbench_sites_on_lm_eval_s_forward_passes(tiny_gpt2: Path, tmp_path: Path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from fracbench.integrations.lm_eval.model import FracbenchHFLM
    from fracbench.models.hf import HFAdapter

    lm = FracbenchHFLM(pretrained=str(tiny_gpt2), dtype="float32", batch_size=8, device="cpu",
                       fracbench_sites="blocks.0.hook_resid_post|blocks.1.mlp.hook_post")
    manager = TaskManager(include_path=str(task_dir()), include_defaults=False, metadata={"fracbench_n": 6})
    results = lm_eval.simple_evaluate(model=lm, tasks=["fracbench_copy_name_test"], task_manager=manager)
    assert results["results"]["fracbench_copy_name_test"]["acc,none"] is not None
    assert lm.n_batches == len(lm.batches) >= 1
    first = lm.batches[0]
    ids = first["input_ids"]
    assert first["blocks.0.hook_resid_post"].shape == (*ids.shape, 32) and first["blocks.1.mlp.hook_post"].shape == (*ids.shape, 128)
    # lm-eval puts its longest row first, unpadded: fracbench's own adapter reads the same activations from it
    reference = HFAdapter.from_pretrained(tiny_gpt2)
    with torch.no_grad(), reference.capturing(["blocks.0.hook_resid_post"]) as store:
        reference.model(input_ids=ids[:1])
    torch.testing.assert_close(store["blocks.0.hook_resid_post"][0], first["blocks.0.hook_resid_post"][0])


def test_fracbench_lm_eval_hands_over_to_lm_eval_with_the_model_and_tasks(tiny_gpt2: Path, tmp_path: Path,
                                                                         capfd: pytest.CaptureFixture) -> None:
    activations = tmp_path / "activations"
    status = main(["lm-eval", "--model", "fracbench-hf", "--model_args", f"pretrained={tiny_gpt2},fracbench_activations={activations}",
                   "--tasks", "fracbench_quote_close_test", "--metadata", '{"fracbench_n": 4}', "--device", "cpu"])
    assert status == 0
    assert "fracbench_quote_close_test" in capfd.readouterr().out
    saved = sorted(activations.glob("batch-*.pt"))
    assert saved and set(torch.load(saved[0])) == {"input_ids", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"}


def test_run_takes_lm_eval_s_model_spelling(tiny_gpt2: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["run", "--model", "hf", "--model_args", f"pretrained={tiny_gpt2},dtype=float32", "--tasks", "quote_close", "--n", "4",
            "--no-probes", "--no-circuits", "--no-progress", "--out", str(tmp_path)]
    assert main(args) == 0
    written = json.loads(results_json(next(tmp_path.glob("*.json.xz")).read_bytes()))
    assert written["model"]["name"] == f"hf:{tiny_gpt2.resolve()}" and written["provenance"]["dtype"] == "float32"
    assert main(["run", "--model", "zoo:dense", "--model_args", "pretrained=x", "--out", str(tmp_path)]) == 2
    assert "--model_args goes with one `--model hf`" in capsys.readouterr().err


def test_a_run_can_carry_lm_eval_s_results_for_the_same_model_and_seed(tiny_gpt2: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    from fracbench.results import read_results

    args = ["run", "--model", f"hf:{tiny_gpt2}", "--tasks", "quote_close,copy_name", "--n", "6", "--no-probes", "--no-circuits",
            "--lm-eval", "--no-progress", "--out", str(tmp_path)]
    assert main(args) == 0
    n_splits = sum(len(TASKS[name].splits()) - 1 for name in ("quote_close", "copy_name"))  # every split but train
    assert f"acc equals fracbench's behaviour accuracy on {n_splits} of {n_splits} splits" in capsys.readouterr().out
    result = read_results(next(tmp_path.glob("*.json.xz")))
    assert result.schema_version == SCHEMA_VERSION and result.lm_eval.n == 6 and result.lm_eval.seed == 0
    assert result.lm_eval.results["fracbench_copy_name_test"]["acc,none"] == pytest.approx(result.tasks["copy_name"].behaviour["test"].accuracy)
    assert main(["run", "--model", "zoo:dense", "--lm-eval", "--out", str(tmp_path)]) == 2
    assert "--lm-eval runs lm-eval's HuggingFace model" in capsys.readouterr().err
