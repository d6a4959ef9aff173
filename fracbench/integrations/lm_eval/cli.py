"""``fracbench lm-eval ARGS...``: lm-eval's own command line with the ``fracbench-hf`` model registered and
fracbench's task directory on the include path (unless ``--include_path`` is given)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import task_dir


def lm_eval_argv(args: Sequence[str]) -> list[str]:
    """The arguments handed to lm-eval: ``args``, plus ``--include_path <fracbench's tasks>`` if none is given."""
    args = list(args)
    if not any(a == "--include_path" or a.startswith("--include_path=") for a in args):
        args += ["--include_path", str(task_dir())]
    return args


def main(args: Sequence[str]) -> int:
    """Run lm-eval's CLI in this process (it reads ``sys.argv``); returns its exit status."""
    try:
        from lm_eval.__main__ import cli_evaluate
    except ImportError as err:
        raise OSError(f"lm-eval is not installed ({err}); pip install 'fracbench[lm-eval]'") from None
    from . import model  # noqa: F401  (registers fracbench-hf)

    saved = sys.argv
    sys.argv = ["lm-eval", *lm_eval_argv(args)]
    try:
        cli_evaluate()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved
    return 0
