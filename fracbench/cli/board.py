"""The leaderboard's commands: ``fracbench submit``, ``fracbench leaderboard check|build`` and ``fracbench verify``.

Exit status: 0 accepted / valid / reproduced; 1 refused / invalid / not reproduced, with every reason printed
(``--json``: one machine-readable document on stdout); 2 usage errors and files that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..leaderboard import (MAX_SUBMISSION_BYTES, SITE, Problem, Refused, Validation, build_site, check_board, entries,
                          interrupted, submit, validate_submission)
from ..leaderboard.table import estimate_json, task_json, with_ci
from ..leaderboard.validate import size_problems
from ..results import read_results
from ..scoring import model_scores
from ..verify import DEFAULT_SAMPLE, verify

BOARD = Path("leaderboard")  # the default board: the project's own, at a checkout's root


def add_commands(sub) -> None:
    p = sub.add_parser("submit", help="validate a results file by recomputing its scores, and add it to a board")
    p.add_argument("file", type=Path, metavar="RESULTS.json", help="a results file written by `fracbench run`")
    p.add_argument("--board", type=Path, default=BOARD, metavar="DIR", help="the board directory, e.g. a checkout of the board "
                   "repository (default: ./leaderboard)")
    p.add_argument("--dry-run", action="store_true", help="validate only: print what the board would answer, write nothing")
    p.add_argument("--json", action="store_true", help="print one JSON document (accepted, partial, problems, scores)")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("leaderboard", help="re-validate a board, or build its static site")
    board_sub = p.add_subparsers(dest="leaderboard_command", required=True, metavar="{check,build}")
    b = board_sub.add_parser("check", help="re-validate every submission on a board (what the board's CI runs)")
    b.add_argument("board", nargs="?", type=Path, default=BOARD, metavar="DIR", help="the board directory (default: ./leaderboard)")
    b.add_argument("--json", action="store_true", help="print one JSON document: file -> problems")
    b.set_defaults(func=cmd_check)
    b = board_sub.add_parser("build", help="build the board's static site: index.html, model pages, leaderboard.json/.md")
    b.add_argument("board", nargs="?", type=Path, default=BOARD, metavar="DIR", help="the board directory (default: ./leaderboard)")
    b.add_argument("--out", type=Path, metavar="DIR", help=f"where to write the site (default: DIR/{SITE})")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_build)

    p = sub.add_parser("verify", help="rerun a seeded sample of a results file's tasks on a model; check the claim reproduces")
    p.add_argument("file", type=Path, metavar="RESULTS.json", help="the claim: a results file")
    p.add_argument("--model", required=True, metavar="SPEC", help="the model the claim is about: zoo:NAME or hf:PATH")
    p.add_argument("--tasks", help="comma-separated tasks to rerun (default: a seeded sample of the claim's tasks)")
    p.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, metavar="K", help=f"tasks to sample (default: {DEFAULT_SAMPLE})")
    p.add_argument("--sample-seed", type=int, default=0, metavar="S", help="seed of the sample (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--out", type=Path, metavar="DIR", help="keep the rerun's results file in DIR (default: discarded)")
    p.add_argument("--json", action="store_true", help="print one JSON document with every check")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_verify)


# -- submit ------------------------------------------------------------------------


def read_submission(path: Path) -> bytes | list[Problem]:
    """The file's bytes, or the size problem when it is over the limit (without reading it)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    too_big = size_problems(path.stat().st_size)
    return too_big or path.read_bytes()


def cmd_submit(args: argparse.Namespace) -> int:
    if not args.dry_run and not args.board.is_dir():
        raise FileNotFoundError(f"no board at {args.board}: pass --board DIR (a checkout of the board repository), "
                                f"create it with `mkdir -p {args.board}`, or validate only with --dry-run")
    raw = read_submission(args.file)
    entry, validation = None, None
    if isinstance(raw, list):
        problems = raw
    elif args.dry_run:
        validation = validate_submission(raw)
        problems = validation.problems
    else:
        try:
            entry, validation = submit(raw, args.board)
            problems = []
        except Refused as refused:
            problems = refused.problems
    accepted = not problems
    if args.json:
        print(json.dumps(submission_json(args, accepted, entry, validation, problems), indent=1))
    elif accepted:
        print(describe_accepted(args, entry, validation))
    else:
        print(f"refused: {args.file} ({len(problems)} problem{'s' if len(problems) != 1 else ''}); fix these and submit again:",
              file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
    return 0 if accepted else 1


def describe_accepted(args: argparse.Namespace, entry: Path | None, v: Validation) -> str:
    s = model_scores(v.result, verdicts=v.verdicts)
    where = "would be accepted (dry run; nothing written)" if entry is None else f"accepted as {entry}"
    lines = [f"{args.file}: {where}",
             f"  model {v.result.model.name!r}, {len(v.result.tasks)} task(s)" + (", partial: ranked with the partial submissions"
                                                                                   if v.partial else ", the full suite"),
             f"  D {with_ci(s.D)}  C {with_ci(s.C)}  F {with_ci(s.F)}  (means over tasks, recomputed)",
             f"  verdict {s.verdict}" + (f": {'; '.join(s.reasons)}" if s.reasons else "")]
    if entry is not None:
        lines.append(f"rebuild the site with `fracbench leaderboard build {args.board}`")
    return "\n".join(lines)


def submission_json(args: argparse.Namespace, accepted: bool, entry: Path | None, v: Validation | None, problems: list[Problem]) -> dict:
    scores = None
    if accepted and v is not None:
        s = model_scores(v.result, verdicts=v.verdicts)
        scores = {"D": estimate_json(s.D), "C": estimate_json(s.C), "F": estimate_json(s.F), "verdict": s.verdict,
                  "reasons": s.reasons, "tasks": {n: task_json(t) for n, t in sorted(s.tasks.items())}}
    return {"file": str(args.file), "accepted": accepted, "dry_run": args.dry_run,
            "partial": v.partial if v is not None and v.result is not None else None,
            "entry": str(entry) if entry is not None else None,
            "problems": [{"field": p.field, "message": p.message} for p in problems], "scores": scores,
            "limits": {"max_bytes": MAX_SUBMISSION_BYTES}}


# -- leaderboard -------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    if not args.board.is_dir():
        raise FileNotFoundError(f"no board at {args.board}: pass the board directory")
    bad = check_board(args.board)
    listed = entries(args.board)
    stray = [p.name for p in interrupted(args.board)]
    if args.json:
        print(json.dumps({"board": str(args.board), "entries": len(listed), "valid": not bad, "ignored": stray,
                          "problems": {n: [{"field": p.field, "message": p.message} for p in ps] for n, ps in sorted(bad.items())}},
                         indent=1))
        return 1 if bad else 0
    for name in stray:
        print(f"ignored: submissions/{name} (an interrupted submission, never an entry; safe to delete)")
    if not bad:
        print(f"{args.board}: {len(listed)} entr{'y' if len(listed) == 1 else 'ies'}, all valid")
        return 0
    print(f"{args.board}: {len(bad)} of {len(listed)} entries invalid:", file=sys.stderr)
    for name, problems in sorted(bad.items()):
        for p in problems:
            print(f"  submissions/{name}: {p}", file=sys.stderr)
    return 1


def cmd_build(args: argparse.Namespace) -> int:
    if not args.board.is_dir():
        raise FileNotFoundError(f"no board at {args.board}: pass the board directory")
    try:
        out = build_site(args.board, args.out, progress=not args.no_progress)
    except Refused as refused:
        print(f"{args.board}: not built; the board does not check (run `fracbench leaderboard check {args.board}`):", file=sys.stderr)
        for p in refused.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    n = len(list((out / "models").glob("*.html")))
    print(f"wrote {out}: index.html, leaderboard.json, leaderboard.md, scatter.svg and {n} model page{'s' if n != 1 else ''}")
    return 0


# -- verify ------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    claim = read_results(args.file)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    v = verify(claim, args.model, tasks=tasks, sample=args.sample, sample_seed=args.sample_seed, device=args.device,
               out_dir=args.out, progress=not args.no_progress)
    if args.json:
        print(json.dumps({"file": str(args.file), "model": v.model, "weights_match": v.weights_match, "tasks": v.tasks,
                          "reproduced": v.reproduced, "rerun": str(v.rerun) if v.rerun else None,
                          "checks": [c.__dict__ for c in v.checks]}, indent=1))
        return 0 if v.reproduced else 1
    if not v.weights_match:
        print(f"not reproduced: {args.model}'s weights are not the claim's (model.weights_sha256 "
              f"{claim.model.weights_sha256[:16]}...); pass the model the file was made from", file=sys.stderr)
        return 1
    width = max(len("task"), *map(len, v.tasks))
    print(f"reran {', '.join(v.tasks)} of {args.file} on {args.model} (the claim's seed and example counts)")
    print(f"{'task':<{width}}  {'metric':<7}  {'claimed [95% interval]':<28}  {'rerun':<16}  {'in interval':<11}  exact")
    for c in v.checks:
        print(f"{c.task:<{width}}  {c.metric:<7}  {c.claimed:<28}  {c.measured:<16}  {'yes' if c.reproduced else 'NO':<11}  "
              f"{'yes' if c.exact else 'no'}")
    failed = [c for c in v.checks if not c.reproduced]
    inexact = sum(not c.exact for c in v.checks)
    print(f"{len(v.checks) - len(failed)} of {len(v.checks)} checks reproduced within the claim's interval"
          + (f"; {inexact} not exactly (the same seed on the same code and device gives the same numbers: a difference "
             "means another fracbench, device or dtype, or other numbers)" if inexact else "; all exactly")
          + (f"; rerun kept at {v.rerun}" if v.rerun else ""))
    return 0 if not failed else 1

