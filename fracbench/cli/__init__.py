"""The ``fracbench`` command: run the suite, inspect tasks, manage the zoo (the leaderboard's commands: :mod:`.board`).

Bad input (an unknown name, an unwritable directory, a missing file, ...) ends with
one line on stderr starting ``fracbench: error:`` and exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .. import training
from ..config import (ABLATIONS, BATCH_SIZE, DEFAULT_ABLATION, DEFAULT_RANKING, DEFAULT_RESTARTS, DTYPES, N_TEST, N_TRAIN, RANKINGS, RunConfig,
                      read_sweep)
from ..executors import EXECUTORS, make_executor
from ..jobs import JOBS_DIR
from ..models import check_device, resolve_model, zoo
from ..report import behaviour_markdown, behaviour_table, decodability_table, erasure_table, plot_behaviour, token_pruning_table
from ..report.coherence import basis_sensitivity_table, coherence_table, scores_markdown, sensitivity_markdown
from ..results import RunResult, check_writable, read_results
from ..runner import figure_path, finished_results, run
from ..tasks import SUITE_VERSION, TASKS, Example, Task, get_task
from . import board

USER_ERRORS = (KeyError, ValueError, OSError, FloatingPointError)  # reported as `fracbench: error:`, exit 2
LABEL_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"  # one character per latent class in `tasks show`
STRIP_WIDTH = 64  # prompt characters per line in `tasks show`


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors read like every other fracbench error."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("fracbench").strip()
        self.exit(2, f"fracbench: error: {where + ': ' if where else ''}{message}; see `{self.prog} --help`\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fracbench`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["lm-eval"]:  # every argument is lm-eval's, options included: argparse would claim them
        argv = ["lm-eval", "--", *argv[1:]]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return stop.code if isinstance(stop.code, int) else 0
    args.command_line = ["fracbench", *argv]
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"fracbench: error: {_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        jobs = getattr(args, "jobs_dir", None)
        kept = (f"; the tasks it finished are kept in {jobs}, and the same command resumes from them"
                if jobs is not None and jobs.is_dir() else "; rerun the command for the rest")
        print("\nfracbench: interrupted: every file fracbench writes is written whole or not at all, so the files it reported "
              f"writing are complete and nothing partial is left{kept}", file=sys.stderr)
        return 130


def _message(err: BaseException) -> str:
    """KeyError's str() wraps its message in quotes; show the message itself."""
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fracbench", description="Decodability vs coherent organization: a benchmark suite for interpretability.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,report,tasks,zoo,submit,leaderboard,verify,lm-eval}")

    p = sub.add_parser("run", help="evaluate models on the suite and write one results file per model")
    p.add_argument("--model", action="append", metavar="SPEC",
                   help="zoo:NAME (or NAME), hf:PATH, hf:pretrained=PATH[,dtype=...] or rotated:SPEC (a native model's rotated "
                        "twin); repeatable (default: every zoo model but the further training seeds, `fracbench zoo list`)")
    p.add_argument("--model_args", "--model-args", dest="model_args", metavar="ARGS",
                   help="lm-eval style model arguments for `--model hf`: pretrained=PATH[,dtype=...]")
    p.add_argument("--tasks", default="all", help="'all' or comma-separated task names (default: all)")
    p.add_argument("--out", default="fracbench-results", type=Path, metavar="DIR", help="results directory (default: ./fracbench-results)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="parameter dtype for hf models (default: float32)")
    p.add_argument("--n", type=int, default=N_TEST, metavar="N", help=f"examples per split (default: {N_TEST})")
    p.add_argument("--seed", type=int, default=0, help="seed of the examples (default: 0)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, metavar="B", help=f"examples per forward pass (default: {BATCH_SIZE})")
    p.add_argument("--n-train", type=int, default=N_TRAIN, metavar="N",
                   help=f"train examples the decodability probes are fitted on (default: {N_TRAIN})")
    p.add_argument("--restarts", type=int, metavar="R",
                   help=f"restarts of the circuit search; the smallest circuit is reported and the restarts' spread is in C's "
                   f"interval (default: {DEFAULT_RESTARTS}, 1 with --ranking eap-ig; the leaderboard takes >= {DEFAULT_RESTARTS})")
    p.add_argument("--ranking", default=DEFAULT_RANKING, choices=RANKINGS,
                   help="what ranks the nodes a circuit is cut from: learned masks (masks) or EAP-IG attributions (eap-ig: one "
                   "deterministic ranking, about 50x cheaper than five searches on a 124M model, less faithful per node on the zoo; "
                   f"not taken by the leaderboard); docs/metrics.md, 'Attribution patching' (default: {DEFAULT_RANKING})")
    p.add_argument("--ablation", default=DEFAULT_ABLATION, choices=ABLATIONS,
                   help="what a node outside a circuit takes: its mean over the search prompts' text tokens (mean) or its mean at "
                   f"the same token position (positional_mean); docs/metrics.md, 'Ablation' (default: {DEFAULT_ABLATION})")
    p.add_argument("--no-probes", action="store_true", help="skip decodability (probes)")
    p.add_argument("--no-circuits", action="store_true", help="skip circuits, stress and OOD circuit tests, and sparsity")
    p.add_argument("--lm-eval", action="store_true", help="also run lm-eval on fracbench's lm-eval tasks (same model, tasks, n, "
                   "seed; hf models) and keep its results in the results file")
    p.add_argument("--sweep", type=Path, metavar="FILE",
                   help="a TOML file naming the models (models = [...]), optionally the tasks and a [config] table of run "
                   "settings; replaces --model and --tasks (docs/distributed.md, 'Sweeps')")
    p.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="where the (model, task) jobs run: in this process (local) or as Ray tasks on a Ray cluster (ray; "
                   "pip install \"fracbench[ray]\"); the same results either way (default: local)")
    p.add_argument("--address", metavar="ADDR", help="the Ray cluster for --executor ray: host:port of its head, or 'auto' "
                   "(default: the cluster RAY_ADDRESS names, else a local one on this machine's CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="print results files as behaviour and decodability tables, or one Markdown table")
    p.add_argument("files", nargs="+", type=Path, metavar="RESULTS.json", help="results files written by `fracbench run`")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--markdown", action="store_true", help="Markdown tables across the files: behaviour, a column per model; scores and verdicts, a row per task and model")
    p.add_argument("--plot", type=Path, metavar="FILE", help="also draw robustness curves (accuracy vs OOD severity) to a .png or .svg")
    form.add_argument("--sensitivity", action="store_true", help="a Markdown table of the verdicts with each threshold varied")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("tasks", help="list the tasks; `tasks show NAME` prints examples")
    p.set_defaults(func=cmd_tasks)
    tasks_sub = p.add_subparsers(dest="tasks_command", metavar="{show}")
    s = tasks_sub.add_parser("show", help="a task's latents, OOD axes and sample examples with their labels")
    s.add_argument("name", help="task name")
    s.add_argument("--split", default="test", help="train, test or ood/<axis>/<level> (default: test)")
    s.add_argument("--n", type=int, default=3, metavar="N", help="examples to show (default: 3)")
    s.add_argument("--seed", type=int, default=0, help="seed of the examples (default: 0)")
    s.set_defaults(func=cmd_tasks_show)

    p = sub.add_parser("zoo", help="the reference models: list them, retrain one, or export one for HuggingFace")
    zoo_sub = p.add_subparsers(dest="zoo_command", required=True, metavar="{list,train,export}")
    z = zoo_sub.add_parser("list", help="zoo models, and whether their checkpoints exist")
    z.set_defaults(func=cmd_zoo_list)
    z = zoo_sub.add_parser("train", help="retrain a zoo model from its recipe and write its checkpoint")
    z.add_argument("name", help="zoo model name")
    z.add_argument("--out", type=Path, metavar="PATH", help="checkpoint file or directory (default: the package's checkpoints)")
    z.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    z.set_defaults(func=cmd_zoo_train)
    z = zoo_sub.add_parser("export", help="write a zoo model as a HuggingFace GPT-2 directory (transformers and TransformerLens "
                           "read it offline; `--model hf:DIR` runs it through the HuggingFace adapter)")
    z.add_argument("name", help="zoo model name")
    z.add_argument("directory", type=Path, help="a new (or empty) directory to write")
    z.set_defaults(func=cmd_zoo_export)
    board.add_commands(sub)

    p = sub.add_parser("lm-eval", add_help=False, help="lm-eval's command line, with the fracbench-hf model and fracbench's tasks "
                       "(every argument goes to lm-eval; `fracbench lm-eval --help` is lm-eval's help)")
    p.add_argument("lm_eval_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_lm_eval)
    return parser


# -- run ---------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    # everything that can be checked is checked before the first (slow) evaluation
    restarts = {} if args.restarts is None else {"restarts": args.restarts}  # unset: the ranking's default
    config = RunConfig(tasks=args.tasks, n_test=args.n, n_train=args.n_train, seed=args.seed, batch_size=args.batch_size,
                       probes=not args.no_probes, circuits=not args.no_circuits, ablation=args.ablation, ranking=args.ranking,
                       device=args.device, dtype=args.dtype, lm_eval=args.lm_eval, **restarts)
    if args.sweep is not None:
        if args.model or args.model_args or args.tasks != "all":
            raise ValueError("--sweep names the models and tasks; give them in the sweep file, not with --model or --tasks")
        sweep = read_sweep(args.sweep, config)
        specs, config = sweep.models, sweep.config
    else:
        specs, config = model_specs(args.model, args.model_args), config.check()
    check_device(config.device)
    for spec in specs:
        resolve_model(spec, config.dtype)
    executor = make_executor(args.executor, args.address)  # a bad address fails here, before anything is written
    check_writable(args.out)
    args.jobs_dir = args.out / JOBS_DIR  # what Ctrl-C keeps
    for spec in specs:
        done = finished_results(args.out, spec, config)
        if done is not None:
            print(f"{spec}: already done in {done} (same weights, settings and fracbench); not run again\n")
            continue
        result, path = run(spec, config, args.out, progress=not args.no_progress, command=args.command_line, executor=executor)
        print(behaviour_table(result))
        if config.lm_eval:
            print("\n" + lm_eval_agreement(result))
        if config.probes:
            print("\n" + decodability_table(result))
            print("\n" + erasure_table(result))
        if config.circuits:
            print("\n" + coherence_table(result))
        print(f"wrote {path}")
        if config.probes:
            print(f"wrote {figure_path(path)}")
            print(f"wrote {figure_path(path, 'erasure')}")
        if config.circuits:
            print(f"wrote {figure_path(path, 'coherence')}")
        print()
    return 0


def lm_eval_agreement(result: RunResult) -> str:
    """One line: on how many splits lm-eval's acc equals fracbench's behaviour accuracy, and the ones that differ."""
    from ..integrations.lm_eval.harness import agreement

    rows = agreement(result)
    differ = [f"{task} {split}: fracbench {mine:.4f}, lm-eval {'missing' if theirs is None else f'{theirs:.4f}'}"
              for task, split, mine, theirs in rows if theirs is None or abs(mine - theirs) > 1e-9]
    head = f"lm-eval {result.lm_eval.lm_eval_version}: acc equals fracbench's behaviour accuracy on {len(rows) - len(differ)} of {len(rows)} splits"
    return "\n".join([head, *(f"  differs: {d}" for d in differ)])


def model_specs(models: list[str] | None, model_args: str | None) -> list[str]:
    """The specs to run: ``--model`` as given (default: the reference zoo, :func:`~fracbench.models.zoo.reference_models`),
    or lm-eval's ``--model hf --model_args ...``."""
    if model_args is None:
        return models or [f"zoo:{name}" for name in zoo.reference_models()]
    if models not in (["hf"], ["hf-auto"], ["fracbench-hf"]):
        raise ValueError(f"--model_args goes with one `--model hf` (lm-eval's spelling), not {models}; "
                         "or give the spec alone: --model hf:pretrained=PATH,dtype=float32")
    return [f"hf:{model_args}"]


def cmd_report(args: argparse.Namespace) -> int:
    results = [read_results(path) for path in args.files]
    if args.sensitivity:
        print(sensitivity_markdown(results))
    elif args.markdown:
        print(behaviour_markdown(results))
        if any(t.probes is not None or t.circuits is not None for r in results for t in r.tasks.values()):
            print("\n" + scores_markdown(results))
    else:
        print("\n\n".join(_report(r) for r in results))
        pairs = basis_sensitivity_table(results)
        if pairs:
            print("\n" + pairs)
    if args.plot is not None:
        check_writable(args.plot.parent)
        print(f"wrote {plot_behaviour(results, args.plot)}")
    return 0


def _report(result: RunResult) -> str:
    """The behaviour table (with D per task), then the decodability table when the run has probes
    and the coherence table when it has circuits."""
    out = behaviour_table(result)
    if any(t.probes is not None for t in result.tasks.values()):
        out += "\n\n" + decodability_table(result)
    if any(latent.erasure is not None for t in result.tasks.values() if t.probes is not None for latent in t.probes.latents.values()):
        out += "\n\n" + erasure_table(result)
    if any(t.token_pruning is not None for t in result.tasks.values()):
        out += "\n\n" + token_pruning_table(result)
    if any(t.circuits is not None for t in result.tasks.values()):
        out += "\n\n" + coherence_table(result)
    return out


def cmd_lm_eval(args: argparse.Namespace) -> int:
    from ..integrations.lm_eval.cli import main as lm_eval_main

    return lm_eval_main([a for i, a in enumerate(args.lm_eval_args) if not (i == 0 and a == "--")])


# -- tasks -------------------------------------------------------------------------


def cmd_tasks(args: argparse.Namespace) -> int:
    print(f"{len(TASKS)} tasks, suite version {SUITE_VERSION}\n")
    for name in TASKS:
        task = TASKS[name]
        print(f"{task.name} (v{task.version})")
        print(f"  {task.description}")
        print("  latents:  " + ", ".join(f"{s.name} ({s.n_classes} classes)" for s in task.latents))
        print("  OOD axes: " + ", ".join(f"{a.name} ({a.n_levels} levels)" for a in task.ood_axes))
        print()
    print("`fracbench tasks show NAME` prints a task's examples with their latent labels")
    return 0


def cmd_tasks_show(args: argparse.Namespace) -> int:
    task = get_task(args.name)
    split = task.split(args.split).name
    examples = task.examples(split, args.n, args.seed)
    print(describe_task(task))
    print(f"\nsplit {split}, seed {args.seed}: {len(examples)} example(s)")
    print("latent rows: one label per prompt character (10 and up as a, b, ...); · = not labelled there; ↵ = newline")
    for i, ex in enumerate(examples):
        print(f"\nexample {i}   target {ex.target!r}   foil {ex.foil!r}")
        print(f"  prompt: {ex.prompt!r}")
        print("\n".join(latent_strips(ex)))
    return 0


def describe_task(task: Task) -> str:
    lines = [f"{task.name} (v{task.version}): {task.description}", f"  spurious cue: {task.cue}", "  latents:"]
    lines += [f"    {s.name} ({s.n_classes} classes): {s.description}" for s in task.latents]
    lines.append("  OOD axes:")
    for a in task.ood_axes:
        levels = ", ".join(f"{i} = {d}" for i, d in enumerate(a.levels, start=1))
        lines.append(f"    {a.name}: {a.description} (levels {levels})")
    lines.append("  splits: " + ", ".join(s.name for s in task.splits()))
    return "\n".join(lines)


def latent_strips(ex: Example) -> list[str]:
    """The prompt a line at a time, each latent's labels printed under the characters they label."""
    labels = {name: dict(pairs) for name, pairs in ex.latents.items()}
    width = max(len(f"pos {len(ex.prompt)}"), *map(len, labels))
    out = []
    for start, end in _line_chunks(ex.prompt, STRIP_WIDTH):
        text = ex.prompt[start:end].replace("\n", "↵")
        out.append(f"    {f'pos {start}':>{width}}  {text}")
        for name, at in labels.items():
            if any(p in at for p in range(start, end)):  # rows with no label here would be only dots
                out.append(f"    {name:>{width}}  " + "".join(_label_char(at.get(p)) for p in range(start, end)))
    return out


def _line_chunks(text: str, width: int) -> list[tuple[int, int]]:
    """(start, end) spans: each line of ``text`` (newline included), cut every ``width`` characters."""
    spans, start = [], 0
    while start < len(text):
        newline = text.find("\n", start)
        end = min(len(text) if newline < 0 else newline + 1, start + width)
        spans.append((start, end))
        start = end
    return spans


def _label_char(label: int | None) -> str:
    if label is None:
        return "·"
    return LABEL_DIGITS[label] if label < len(LABEL_DIGITS) else "+"


# -- zoo ---------------------------------------------------------------------------


def cmd_zoo_list(args: argparse.Namespace) -> int:
    width = max(map(len, zoo.RECIPES.names()))
    print(f"{'model':<{width}}  {'checkpoint':<12}  description")
    for name in zoo.RECIPES:
        path = zoo.checkpoint_path(name)
        status = f"{path.stat().st_size / 1e6:.1f} MB" if path.exists() else "missing"
        print(f"{name:<{width}}  {status:<12}  {zoo.RECIPES[name].description}")
    print(f"\ncheckpoints: {zoo.checkpoint_dir()}; rebuild one with `fracbench zoo train NAME`")
    return 0


def cmd_zoo_train(args: argparse.Namespace) -> int:
    zoo.RECIPES[args.name]  # an unknown name fails before anything else
    check_device(args.device)
    out = args.out / f"{args.name}.safetensors" if args.out is not None and args.out.is_dir() else args.out
    check_writable((out or zoo.checkpoint_path(args.name)).parent)
    path = training.train_and_save(args.name, out, device=args.device, progress=True)
    print(f"wrote {path}")
    return 0


def cmd_zoo_export(args: argparse.Namespace) -> int:
    from ..models.export import PROVENANCE_FILE, export

    adapter = zoo.load(zoo.RECIPES[args.name].name)  # an unknown name fails before anything else
    check_writable(args.directory.expanduser().resolve().parent)
    out = export(adapter, args.directory)
    deviation = json.loads((out / PROVENANCE_FILE).read_text())["max_logit_deviation"]
    print(f"wrote {out} (GPT2LMHeadModel; logits within {deviation:.1e} of zoo:{args.name}'s); run it with --model hf:{out}")
    return 0
