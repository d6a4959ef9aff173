"""The task registry: every task of the suite, by name."""

from __future__ import annotations

from ..registry import Registry
from .base import Example, LatentSpec, OODAxis, Split, Task
from .bracket_depth import BracketDepth
from .copy_name import CopyName
from .dict_or_list import DictOrList
from .quote_close import QuoteClose
from .set_or_string import SetOrString
from .string_list_depth import StringListDepth

SUITE_VERSION = "0.3"  # bump when a task is added, removed or re-versioned

TASKS: Registry[Task] = Registry("task")
for _cls in (QuoteClose, BracketDepth, SetOrString, DictOrList, StringListDepth, CopyName):
    TASKS.register(_cls.name, _cls())


def get_task(name: str) -> Task:
    return TASKS[name]


def resolve_tasks(spec: str | list[str]) -> list[Task]:
    """``"all"``, ``"a,b"`` or a list of names -> tasks, with a clear error for an unknown name."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError("no task named; use 'all' or comma-separated names from: " + ", ".join(TASKS.names()))
    if names == ["all"]:
        return [TASKS[n] for n in TASKS]
    return [TASKS[n] for n in names]


__all__ = ["Example", "LatentSpec", "OODAxis", "Split", "Task", "TASKS", "SUITE_VERSION", "get_task", "resolve_tasks"]
