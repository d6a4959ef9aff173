"""lm-eval run from fracbench (``fracbench run --lm-eval``): the same model, tasks, n and seed as the fracbench
run, through fracbench's lm-eval tasks, its results kept in the results file's ``lm_eval`` section."""

from __future__ import annotations

import math
from importlib import metadata

from ...config import RunConfig
from ...results import LmEvalSection, RunResult
from . import task_dir
from .generate import lm_eval_name


def evaluate(model_dir: str, dtype: str, config: RunConfig) -> LmEvalSection:
    """lm-eval's ``simple_evaluate`` with its own ``hf`` model (``dtype``: the model spec's) on the groups
    ``fracbench_<task>`` of ``config``'s tasks, with its n, seed, device and batch size."""
    n, seed = config.n_test, config.seed
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError as err:
        raise OSError(f"--lm-eval needs lm-eval ({err}); pip install 'fracbench[lm-eval]'") from None
    manager = TaskManager(include_path=str(task_dir()), include_defaults=False, metadata={"fracbench_n": n, "fracbench_seed": seed})
    model_args = f"pretrained={model_dir},dtype={dtype}"
    out = lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=[f"fracbench_{t}" for t in config.tasks],
                                  task_manager=manager, device=config.device, batch_size=config.batch_size)
    return LmEvalSection(lm_eval_version=metadata.version("lm_eval"), model_args=model_args, n=n, seed=seed,
                         results=json_safe(out["results"]), versions=json_safe(out.get("versions", {})),
                         n_samples=json_safe(out.get("n-samples", {})))


def json_safe(value):
    """lm-eval's numbers as JSON values: non-finite floats become null, tuples lists, anything else unknown a string."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def agreement(result: RunResult) -> list[tuple[str, str, float, float | None]]:
    """Per (task, split): fracbench's behaviour accuracy and lm-eval's ``acc`` for it (None: lm-eval has no such task)."""
    if result.lm_eval is None:
        return []
    rows = []
    for name, task in result.tasks.items():
        for split, behaviour in task.behaviour.items():
            acc = result.lm_eval.results.get(lm_eval_name(name, split), {}).get("acc,none")
            rows.append((name, split, behaviour.accuracy, acc if isinstance(acc, float) else None))
    return rows
