"""Conformance checks every task must pass (like scikit-learn's common estimator tests).

A task registered in :data:`fracbench.tasks.TASKS` is tested by ``tests/tasks`` through
:func:`check_task`; call it on your own task before registering it.
"""

from __future__ import annotations

from collections import Counter

from .base import Task

N_CHECK = 200


def check_task(task: Task, n: int = N_CHECK) -> None:
    """Raise ``AssertionError`` naming the first contract the task breaks."""
    assert task.name and task.version and task.description, f"{task!r}: name, version and description must be set"
    assert task.latents, f"{task.name}: declares no latents"
    assert task.ood_axes, f"{task.name}: declares no OOD axis"
    assert any(a.n_levels >= 3 for a in task.ood_axes), f"{task.name}: no OOD axis has 3 or more severity levels"
    declared = {s.name: s for s in task.latents}
    for split in task.splits():
        examples = task.examples(split.name, n, seed=0)
        assert examples == task.examples(split.name, n, seed=0), f"{task.name}/{split.name}: same seed, different examples"
        assert examples != task.examples(split.name, n, seed=1), f"{task.name}/{split.name}: seed has no effect"
        seen: set[str] = set()
        for i, ex in enumerate(examples):
            where = f"{task.name}/{split.name} example {i}"
            assert len(ex.target) == 1 and len(ex.foil) == 1, f"{where}: target and foil must be single characters"
            unknown = set(ex.latents) - set(declared)
            assert not unknown, f"{where}: undeclared latents {sorted(unknown)}"
            for name, labels in ex.latents.items():
                for pos, label in labels:
                    assert 0 <= label < declared[name].n_classes, f"{where}: {name} label {label} outside 0..{declared[name].n_classes - 1}"
                    assert 0 <= pos < len(ex.prompt), f"{where}: {name} position {pos} outside the prompt"
                seen.update([name] if labels else [])
        assert seen == set(declared), f"{task.name}/{split.name}: latents never labelled: {sorted(set(declared) - seen)}"
        top_share = Counter(ex.target for ex in examples).most_common(1)[0][1] / len(examples)
        assert top_share <= 0.7, f"{task.name}/{split.name}: one answer is {top_share:.0%} of targets; a constant guess would score well"
    train = {ex.prompt for ex in task.examples("train", n, seed=0)}
    test = {ex.prompt for ex in task.examples("test", n, seed=0)}
    assert not train & test, f"{task.name}: train and test share prompts"
