"""One run's settings: :class:`RunConfig`, the single place their defaults and checks live.

A run is a set of (model, task) jobs; every job of a run is measured with the same config, and a job is named by
its model's weights, its task's version and the config's measurement settings (:meth:`RunConfig.job_settings`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tested interpreter is 3.11
    import tomli as tomllib

from .tasks import TASKS, resolve_tasks

N_TEST = 512  # examples per split
N_TRAIN = 512  # train examples the decodability probes are fitted (and their site chosen) on
BATCH_SIZE = 128  # examples per forward pass
DEFAULT_RESTARTS = 5  # independent restarts of the circuit search; the smallest circuit is reported (scores version 5)
MAX_EXAMPLES = 10_000  # per split (--n, --n-train): every example's numbers are kept in the results file, about 10 KB of
# JSON per example over the suite at five restarts, and readers refuse a file past MAX_RESULTS_BYTES (256 MiB)
RUN_ONLY = ("tasks", "lm_eval")  # settings that choose what a run does, not how a job is measured
DTYPES = ("float32", "float16", "bfloat16")  # parameter dtypes of hf models
ABLATIONS = ("positional_mean", "mean")  # what an ablated node takes: its mean at the same position, or over all positions
DEFAULT_ABLATION = "mean"
RESAMPLE = "resample"  # measured against the mean kinds, not a run option: the rule in docs/metrics.md kept "mean"
# what ranks the nodes a circuit is cut from: the learned masks (the default at every size measured: the better
# faithfulness curve on every zoo model and task), or EAP-IG node attributions (deterministic, one ranking, ~50x cheaper
# than five restarts of the search at GPT-2-small scale; docs/metrics.md, "Attribution patching")
RANKINGS = ("masks", "eap-ig")
DEFAULT_RANKING = "masks"


def check_ablation(ablation: str, measured: bool = False) -> str:
    """``ablation`` if it is one of :data:`ABLATIONS` (or :data:`RESAMPLE`, when ``measured``), else a ValueError naming them."""
    kinds = (*ABLATIONS, RESAMPLE) if measured else ABLATIONS
    if ablation not in kinds:
        raise ValueError(f"ablation must be one of {', '.join(map(repr, kinds))}, got {ablation!r}")
    return ablation


def check_ranking(ranking: str) -> str:
    """``ranking`` if it is one of :data:`RANKINGS`, else a ValueError naming them."""
    if ranking not in RANKINGS:
        raise ValueError(f"ranking (--ranking) must be one of {', '.join(map(repr, RANKINGS))}, got {ranking!r}")
    return ranking


def check_dtype(dtype: str) -> str:
    """``dtype`` if it is one of :data:`DTYPES`, else a ValueError naming them."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    return dtype


class RunConfig(BaseModel):
    """Every setting of a run, frozen, checked by :meth:`check` before a run starts, and written into the results file
    (``provenance.config``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: tuple[str, ...] = tuple(TASKS)  # task names, in the order they run (--tasks)
    n_test: int = N_TEST  # examples per split (--n)
    n_train: int = N_TRAIN  # train examples the probes are fitted on (--n-train)
    seed: int = 0  # seed of the examples, probes and circuit search (--seed)
    batch_size: int = BATCH_SIZE  # examples per forward pass (--batch-size); padding can move a logit's last bits
    probes: bool = True  # decodability, erasure and token pruning (--no-probes)
    circuits: bool = True  # circuits, stress, OOD circuits, regimes, sparsity and specificity (--no-circuits)
    restarts: int = DEFAULT_RESTARTS  # circuit searches; the smallest circuit is reported (--restarts); 1 with eap-ig
    ranking: str = DEFAULT_RANKING  # what ranks the nodes circuits are cut from (--ranking)
    ablation: str = DEFAULT_ABLATION  # what a node outside a circuit takes (--ablation)
    device: str = "cpu"  # torch device (--device)
    dtype: str = "float32"  # parameter dtype of hf models; a spec's own dtype= wins (--dtype)
    lm_eval: bool = False  # also run lm-eval's harness on fracbench's tasks (--lm-eval; hf models)

    @model_validator(mode="before")
    @classmethod
    def _one_attribution_ranking(cls, data):
        """EAP-IG is deterministic: its restarts would be one circuit, so unless restarts are given it runs once."""
        if isinstance(data, dict) and data.get("ranking") == "eap-ig" and "restarts" not in data:
            return {**data, "restarts": 1}
        return data

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_list(cls, tasks):
        """``'all'`` or ``'a,b'`` as the names it means; which names exist is :meth:`check`'s question."""
        if isinstance(tasks, str):
            names = [n.strip() for n in tasks.split(",") if n.strip()]
            return tuple(TASKS.names()) if names == ["all"] else tuple(names)
        return tuple(tasks) if isinstance(tasks, list) else tasks  # a JSON array (strict validation takes no list for a tuple)

    def check(self) -> RunConfig:
        """This config, if a run can be made of it; else a ValueError (a KeyError for an unknown task) in fracbench's
        words, naming the command-line option. A run checks its config before any work; a config read back from a
        results file is not checked again (the limits may have moved since it was written)."""
        resolve_tasks(list(self.tasks))  # an unknown name: a KeyError with the names there are
        repeated = sorted({n for n in self.tasks if self.tasks.count(n) > 1})
        if repeated:
            raise ValueError(f"tasks (--tasks) names {', '.join(repeated)} more than once; give each task once")
        if self.restarts < 1:
            raise ValueError(f"restarts (--restarts) must be at least 1 search, got {self.restarts}")
        if self.n_test < 1:
            raise ValueError(f"n_test (--n) must be at least 1 example per split, got {self.n_test}")
        for option, n in (("n_test (--n)", self.n_test), ("n_train (--n-train)", self.n_train if self.probes else 0)):
            if n > MAX_EXAMPLES:
                raise ValueError(f"{option} is {n:,}; the most a run takes is {MAX_EXAMPLES:,} examples per split (every example's "
                                 "numbers are kept in the results file, which must stay readable); give at most that")
        if self.batch_size < 1:
            raise ValueError(f"batch_size (--batch-size) must be at least 1, got {self.batch_size}")
        if self.probes and self.n_train < 2:
            raise ValueError(f"n_train (--n-train) must be at least 2 train examples (probes are fitted on some and the best site "
                             f"is chosen on others), got {self.n_train}")
        check_ablation(self.ablation)
        check_ranking(self.ranking)
        if self.ranking == "eap-ig" and self.restarts != 1:
            raise ValueError(f"ranking eap-ig (--ranking) is deterministic: its {self.restarts} restarts (--restarts) would all be one "
                             "circuit; give restarts 1, the default with eap-ig")
        check_dtype(self.dtype)
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"device {self.device!r} is not supported; use 'cpu' or 'cuda' (or 'cuda:N')")
        return self

    def job_settings(self) -> dict:
        """The settings a (model, task) job's numbers depend on: all but which tasks run and lm-eval."""
        return self.model_dump(exclude=set(RUN_ONLY))



@dataclass(frozen=True)
class Sweep:
    """A sweep file read: the models to run, each on the same tasks and settings."""

    models: list[str]
    config: RunConfig


def read_sweep(path: str | Path, base: RunConfig) -> Sweep:
    """A sweep file (TOML): ``models`` (a list of model specs), optionally ``tasks`` (a list of names, or "all") and a
    ``[config]`` table of :class:`RunConfig` fields, which replace ``base``'s (the command line's). Every problem is a
    ValueError naming the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"cannot read the sweep file {path}: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a TOML sweep file: {err}") from None
    unknown = sorted(set(data) - {"models", "tasks", "config"})
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]!r}; a sweep file has models, tasks and a [config] table")
    models = data.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise ValueError(f'{path}: models must be a non-empty list of model specs, e.g. models = ["zoo:dense", "hf:/models/m"]')
    settings = data.get("config", {})
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: config must be a table ([config]) of run settings")
    if "tasks" in settings:
        raise ValueError(f"{path}: give tasks at the top level of the sweep file, not in [config]")
    if "tasks" in data:
        settings = {**settings, "tasks": data["tasks"]}
    try:
        config = RunConfig(**{**base.model_dump(exclude_unset=True), **settings})
    except ValidationError as err:
        where = ".".join(str(p) for p in err.errors()[0]["loc"])
        raise ValueError(f"{path}: config.{where}: {err.errors()[0]['msg']}") from None
    return Sweep(list(models), config.check())
