"""The `fracbench` command: listings, examples, runs, and bad input as `fracbench: error:` with status 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fracbench.cli import main
from fracbench.models import zoo
from fracbench.results import read_results, results_json, write_results
from fracbench.config import MAX_EXAMPLES
from fracbench.jobs import JOBS_DIR
from fracbench.tasks import TASKS


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, err: str) -> None:
    assert code == 2
    assert err.startswith("fracbench: error: ")
    assert "Traceback" not in err


def test_tasks_lists_every_task_with_versions_latents_and_axes(capsys) -> None:
    code, out, _ = run_cli(capsys, "tasks")
    assert code == 0
    assert len(TASKS) == 6
    for name in TASKS:
        task = TASKS[name]
        assert f"{name} (v{task.version})" in out
        assert all(f"{s.name} ({s.n_classes} classes)" in out for s in task.latents)
        assert all(f"{a.name} ({a.n_levels} levels)" in out for a in task.ood_axes)


def test_tasks_show_prints_examples_with_latent_labels_under_the_characters(capsys) -> None:
    code, out, _ = run_cli(capsys, "tasks", "show", "quote_close", "--n", "2")
    assert code == 0
    example = TASKS["quote_close"].examples("test", 1, 0)[0]
    assert f"target {example.target!r}   foil {example.foil!r}" in out
    assert f"prompt: {example.prompt!r}" in out
    lines = out.splitlines()
    text_row = next(i for i, line in enumerate(lines) if line.strip().startswith("pos 0 "))
    column = lines[text_row].index("pos 0") + len("pos 0") + 2  # where the prompt's first character is printed
    labels = dict(example.latents["inside_string"])
    row = next(line for line in lines[text_row:] if line.strip().startswith("inside_string"))
    first_line = len(example.prompt.split("\n")[0])
    assert row[column : column + first_line] == "".join(str(labels[p]) for p in range(first_line))
    assert out.count("example ") >= 2


def test_tasks_show_an_ood_split(capsys) -> None:
    code, out, _ = run_cli(capsys, "tasks", "show", "bracket_depth", "--split", "ood/deeper/3", "--n", "1")
    assert code == 0
    assert "split ood/deeper/3, seed 0: 1 example(s)" in out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["tasks", "show", "qoute_close"], "did you mean 'quote_close'"),
        (["tasks", "show", "quote_close", "--split", "ood/long_bdy/1"], "did you mean 'long_body'"),
        (["run", "--tasks", "bracket_dept"], "did you mean 'bracket_depth'"),
        (["zoo", "train", "dens"], "did you mean 'dense'"),
        (["run", "--n", "many"], "invalid int value: 'many'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_names_and_arguments_are_errors_with_status_2(capsys, argv: list[str], expected: str) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert_user_error(code, err)
    assert expected in err


def test_an_unknown_model_lists_the_valid_names(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "run", "--model", "nope", "--out", str(tmp_path / "out"))
    assert_user_error(code, err)
    assert all(name in err for name in zoo.RECIPES.names())
    assert "hf:PATH" in err
    assert not (tmp_path / "out").exists()  # nothing created for a run that cannot start


def test_cuda_without_cuda_is_an_error_with_status_2(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    code, _, err = run_cli(capsys, "run", "--device", "cuda", "--out", str(tmp_path))
    assert_user_error(code, err)
    assert "CUDA is not available" in err and "--device cpu" in err


def test_a_missing_checkpoint_says_how_to_rebuild_it(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(zoo, "checkpoint_dir", lambda: tmp_path / "empty")
    code, _, err = run_cli(capsys, "run", "--out", str(tmp_path / "out"))
    assert_user_error(code, err)
    assert "fracbench zoo train dense" in err


@pytest.mark.parametrize("argv", [[], ["run"], ["tasks"], ["tasks", "show"], ["zoo"], ["zoo", "list"], ["zoo", "train"]])
def test_help_everywhere(capsys, argv: list[str]) -> None:
    code, out, _ = run_cli(capsys, *argv, "--help")
    assert code == 0
    assert out.startswith("usage: fracbench")


def test_plain_run_evaluates_every_reference_zoo_model(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    """The reference zoo: every recipe but the further training seeds (which `--model zoo:dense-s1` runs)."""
    out_dir = tmp_path / "results"
    code, out, err = run_cli(capsys, "run", "--tasks", "quote_close", "--n", "2", "--out", str(out_dir), "--no-progress", "--no-probes",
                             "--no-circuits")
    assert code == 0, err
    files = sorted(out_dir.iterdir())
    reference = zoo.reference_models()
    assert sorted(read_results(f).model.name for f in files) == sorted(f"zoo:{n}" for n in reference)
    assert "dense" in reference and "routed" in reference and "dense-s1" not in reference
    for f in files:
        assert f"wrote {f}" in out
        assert read_results(f).provenance.command[:2] == ["fracbench", "run"]
    assert out.count("quote_close ") == len(reference)  # one table row per model


def test_run_with_repeated_models(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "results"
    argv = ["run", "--model", "zoo:sparse", "--model", "random", "--tasks", "copy_name", "--n", "1", "--out", str(out_dir), "--no-progress",
            "--no-probes", "--no-circuits"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert sorted(read_results(f).model.name for f in out_dir.iterdir()) == ["zoo:random", "zoo:sparse"]


def test_run_into_an_unwritable_directory_is_an_error_and_writes_nothing(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    blocker = work / "a-file"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "run", "--model", "dense", "--out", str(blocker / "out"), "--no-progress")
    assert_user_error(code, err)
    assert "cannot write files into" in err
    assert [p.name for p in work.iterdir()] == ["a-file"]


def test_zoo_list_shows_which_checkpoints_exist(capsys, tiny_zoo: Path) -> None:
    zoo.checkpoint_path("random").unlink()
    code, out, _ = run_cli(capsys, "zoo", "list")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.split() and line.split()[0] in zoo.RECIPES}
    assert set(rows) == set(zoo.RECIPES)
    assert "missing" in rows["random"] and " MB " in rows["dense"]
    assert zoo.RECIPES["sparse"].description in rows["sparse"]


def test_zoo_train_writes_where_asked(capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []
    monkeypatch.setattr("fracbench.training.train_and_save", lambda name, out, device, progress: calls.append((name, out, device)) or out)
    code, out, _ = run_cli(capsys, "zoo", "train", "shortcut", "--out", str(tmp_path))
    assert code == 0
    assert calls == [("shortcut", tmp_path / "shortcut.safetensors", "cpu")]
    assert f"wrote {tmp_path / 'shortcut.safetensors'}" in out


def test_report_reads_results_files_as_tables_and_markdown(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    assert main(["run", "--model", "dense", "--model", "random", "--tasks", "quote_close", "--n", "4", "--out", str(tmp_path), "--no-progress",
                 "--no-probes", "--no-circuits"]) == 0
    files = sorted(tmp_path.glob("*.json.xz"))
    capsys.readouterr()
    assert main(["report", *map(str, files)]) == 0
    assert capsys.readouterr().out.count("quote_close") == 2
    assert main(["report", "--markdown", *map(str, files)]) == 0
    markdown = capsys.readouterr().out
    assert "| task | split | dense | random |" in markdown
    assert "| quote_close | long_body/3 |" in markdown


def test_report_refuses_a_file_that_is_not_results(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": "99"}')
    assert main(["report", str(bad)]) == 2
    assert "schema_version '99'" in capsys.readouterr().err


def test_report_says_what_is_wrong_with_a_relabelled_file_in_its_own_words(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    assert main(["run", "--model", "random", "--tasks", "quote_close", "--n", "4", "--out", str(tmp_path), "--no-progress",
                 "--no-probes", "--no-circuits"]) == 0
    document = json.loads(results_json(next(tmp_path.glob("*.json.xz")).read_bytes()))
    relabelled = tmp_path / "relabelled.json"
    relabelled.write_text(json.dumps({**document, "schema_version": "3"}))
    capsys.readouterr()
    code, _, err = run_cli(capsys, "report", str(relabelled))
    assert_user_error(code, err)
    assert f"{relabelled} is not a valid fracbench results file: <document>: schema_version 3 " in err
    assert "input_value" not in err and "pydantic" not in err and "Value error" not in err


def test_report_refuses_deeply_nested_json_by_name(capsys, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    code, _, err = run_cli(capsys, "report", str(deep))
    assert_user_error(code, err)
    assert f"{deep} nests too deeply" in err


@pytest.mark.parametrize("option", ["--n", "--n-train"])
def test_more_examples_than_a_results_file_can_hold_is_refused_before_any_work(capsys, tiny_zoo: Path, tmp_path: Path,
                                                                              option: str) -> None:
    code, _, err = run_cli(capsys, "run", "--model", "dense", option, "1000000000", "--out", str(tmp_path / "out"))
    assert_user_error(code, err)
    assert f"({option}) is 1,000,000,000; the most a run takes is {MAX_EXAMPLES:,}" in err
    assert not (tmp_path / "out").exists()


def test_ctrl_c_keeps_the_finished_model_and_leaves_nothing_partial(capsys, monkeypatch: pytest.MonkeyPatch, tiny_zoo: Path,
                                                                  tmp_path: Path) -> None:
    written = []

    def interrupted_on_the_second_model(result, path):
        if written:
            raise KeyboardInterrupt
        written.append(write_results(result, path))
        return written[-1]

    monkeypatch.setattr("fracbench.runner.write_results", interrupted_on_the_second_model)
    code, out, err = run_cli(capsys, "run", "--model", "dense", "--model", "random", "--tasks", "quote_close", "--n", "4",
                             "--n-train", "8", "--no-circuits", "--no-progress", "--out", str(tmp_path / "out"))
    assert code == 130
    assert "fracbench: interrupted" in err and "Traceback" not in err
    assert f"wrote {written[0]}" in out
    kept = sorted(p.name for p in (tmp_path / "out").iterdir())
    stem = written[0].name.removesuffix(".json.xz")
    # the second model left no results file, only its finished task, which the message names
    assert kept == sorted([JOBS_DIR, written[0].name, f"{stem}-decodability.png", f"{stem}-erasure.png"])
    assert f"kept in {tmp_path / 'out' / JOBS_DIR}, and the same command resumes from them" in err
    assert read_results(written[0]).model.name == "zoo:dense"


def test_report_plots_robustness_curves_deterministically(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["run", "--model", "dense", "--tasks", "quote_close,copy_name", "--n", "4", "--out", str(out), "--no-progress",
                 "--no-probes"]) == 0
    files = [str(p) for p in out.glob("*.json.xz")]
    assert main(["report", *files, "--plot", str(tmp_path / "a.png")]) == 0
    assert main(["report", *files, "--plot", str(tmp_path / "b.png")]) == 0
    png = (tmp_path / "a.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert png == (tmp_path / "b.png").read_bytes()


def test_run_measures_decodability_writes_its_figure_and_report_prints_D(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "results"
    argv = ["run", "--model", "dense", "--tasks", "dict_or_list,copy_name", "--n", "6", "--n-train", "20", "--out", str(out_dir), "--no-progress"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    (path,) = out_dir.glob("*.json.xz")
    stem = path.name.removesuffix(".json.xz")
    figure, erasure = path.with_name(stem + "-decodability.png"), path.with_name(stem + "-erasure.png")
    assert figure.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and erasure.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"wrote {path}" in out and f"wrote {figure}" in out and f"wrote {erasure}" in out
    assert "D [95% CI]" in out and "d [95% CI]" in out  # behaviour table with D, then the per-latent table
    assert re.search(r"copy_name\s+source\s+0\.resid_\w+\s+\d+\s+-\s+-\s+-\s+no behaviour", out)  # the erasure table
    assert re.search(r"copy_name\s+source\s+\d", out) and "skipped" not in out  # with the cue random, every latent varies
    result = read_results(path)
    assert result.tasks["dict_or_list"].n_examples["train"] == 20
    code, report, _ = run_cli(capsys, "report", str(path))
    assert code == 0 and "D [95% CI]" in report and "container" in report and "gap [95% CI]" in report


def test_run_with_circuits_writes_the_coherence_figure_and_report_prints_the_verdict(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "results"
    code, out, err = run_cli(capsys, "run", "--model", "dense", "--tasks", "dict_or_list", "--n", "4", "--out", str(out_dir), "--no-progress",
                             "--no-probes")
    assert code == 0, err
    assert sorted(p.name.split("Z", 1)[1] for p in out_dir.iterdir()) == ["-coherence.png", ".json.xz"]
    assert "coherence.png" in out and "verdict" in out
    code, report, _ = run_cli(capsys, "report", str(next(out_dir.glob("*.json.xz"))))
    assert code == 0 and "not scored (no probes" in report  # the untrained tiny model, run without probes


def test_run_without_probes_writes_no_figure(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "results"
    code, out, err = run_cli(capsys, "run", "--model", "dense", "--tasks", "dict_or_list", "--n", "2", "--out", str(out_dir), "--no-progress",
                             "--no-probes", "--no-circuits")
    assert code == 0, err
    assert [p.suffixes for p in out_dir.iterdir()] == [[".json", ".xz"]]
    assert read_results(next(out_dir.iterdir())).tasks["dict_or_list"].probes is None
    assert "wrote" in out and "decodability.png" not in out


def test_too_few_training_examples_is_an_error_before_any_work(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "run", "--model", "dense", "--n-train", "1", "--out", str(tmp_path / "out"))
    assert_user_error(code, err)
    assert "n_train (--n-train) must be at least 2" in err
    assert not (tmp_path / "out").exists()


BOARD = Path(__file__).resolve().parents[1] / "leaderboard" / "submissions"


def test_report_prints_the_scores_and_the_threshold_sensitivity_of_real_runs(capsys) -> None:
    """The README's and docs/metrics.md's tables come from these two commands on the project's board."""
    from fracbench.scoring import model_scores

    files = sorted(p for p in BOARD.iterdir() if p.name.endswith((".json", ".json.xz")))
    results = {read_results(f).model.name: f for f in files}
    chosen = [results["zoo:dense"], results["zoo:random"]]
    code, out, _ = run_cli(capsys, "report", "--markdown", *map(str, chosen))
    assert code == 0 and "| task | model | D | C | G | cue reliance | nodes | restarts (J) | verdict |" in out
    assert "| random | " in out and "does not decode" in out
    code, out, _ = run_cli(capsys, "report", "--sensitivity", *map(str, chosen))
    rows = [line for line in out.splitlines() if line.startswith("| C_low |")]
    assert len(rows) == 5 and sum("(in force)" in r for r in rows) == 1
    in_force = next(r for r in rows if "(in force)" in r)
    assert f"**{model_scores(read_results(chosen[0])).verdict}**" in in_force.split(" | ")[2]


def test_report_takes_one_table_form_at_a_time(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "report", "--markdown", "--sensitivity", str(tmp_path / "x.json"))
    assert code == 2 and "not allowed with argument" in err


def test_a_sweep_file_runs_each_model_with_its_tasks_and_settings(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('models = ["zoo:dense", "zoo:random"]\ntasks = ["quote_close"]\n\n[config]\nn_test = 3\nn_train = 16\n'
                     "circuits = false\n")
    code, out, err = run_cli(capsys, "run", "--sweep", str(sweep), "--seed", "2", "--no-progress", "--out", str(tmp_path / "out"))
    assert code == 0, err
    results = [read_results(p) for p in sorted((tmp_path / "out").glob("*.json.xz"))]
    assert sorted(r.model.name for r in results) == ["zoo:dense", "zoo:random"]
    for r in results:  # the file's settings, and the command line's where the file is silent (--seed)
        assert (r.provenance.config.tasks, r.provenance.config.n_test, r.provenance.config.circuits) == (("quote_close",), 3, False)
        assert r.provenance.config.seed == 2 and list(r.tasks) == ["quote_close"]


def test_a_sweep_file_s_eap_ig_ranking_takes_one_search_unless_the_command_line_asks_for_more(capsys, tiny_zoo: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('models = ["zoo:dense"]\ntasks = ["quote_close"]\n\n[config]\nn_test = 3\nn_train = 16\nranking = "eap-ig"\n')
    code, _, err = run_cli(capsys, "run", "--sweep", str(sweep), "--no-progress", "--out", str(tmp_path / "out"))
    assert code == 0, err
    (result,) = [read_results(p) for p in (tmp_path / "out").glob("*.json.xz")]
    assert (result.provenance.config.ranking, result.provenance.config.restarts) == ("eap-ig", 1)
    code, _, err = run_cli(capsys, "run", "--sweep", str(sweep), "--restarts", "5", "--no-progress", "--out", str(tmp_path / "more"))
    assert code == 2 and "give restarts 1" in err and not (tmp_path / "more").exists()


@pytest.mark.parametrize(("content", "message"), [
    ('tasks = ["quote_close"]\n', "models must be a non-empty list of model specs"),
    ('models = ["zoo:dense"]\nmodel = "x"\n', "unknown key 'model'; a sweep file has models, tasks and a [config] table"),
    ('models = ["zoo:dense"]\n[config]\nn_test = "many"\n', "config.n_test: Input should be a valid integer"),
    ('models = ["zoo:dense"]\n[config]\nrestarts = 0\n', "restarts (--restarts) must be at least 1 search, got 0"),
    ('models = ["zoo:dense"]\n[config]\nranking = "eap-ig"\nrestarts = 3\n', "ranking eap-ig (--ranking) is deterministic: its 3 restarts (--restarts)"),
    ('models = ["zoo:dense"]\ntasks = ["qoute_close"]\n', "did you mean 'quote_close'"),
    ('models = ["zoo:dense"\n', "is not a TOML sweep file"),
    ('models = ["zoo:dnese"]\n', "did you mean 'dense'"),
])
def test_a_bad_sweep_file_is_refused_naming_what_to_fix(capsys, tiny_zoo: Path, tmp_path: Path, content: str, message: str) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(content)
    code, _, err = run_cli(capsys, "run", "--sweep", str(sweep), "--no-progress", "--out", str(tmp_path / "out"))
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_sweep_file_names_the_models_alone(capsys, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('models = ["zoo:dense"]\n')
    code, _, err = run_cli(capsys, "run", "--sweep", str(sweep), "--model", "zoo:random", "--out", str(tmp_path / "out"))
    assert code == 2 and "give them in the sweep file, not with --model or --tasks" in err
    code, _, err = run_cli(capsys, "run", "--sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "out"))
    assert code == 2 and "cannot read the sweep file" in err
