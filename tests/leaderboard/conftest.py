"""Real results files of the tiny model, made once per session: the full suite and a two-task subset."""

from __future__ import annotations

import json

import pytest

from fracbench.models import zoo
from fracbench.runner import run

PARTIAL_TASKS = ["quote_close", "bracket_depth"]


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory: pytest.TempPathFactory, tiny_adapter) -> dict[str, bytes]:
    """``{"full": ..., "partial": ...}``: `fracbench run` files of the tiny untrained model (n_test 3, seed 7)."""
    root = tmp_path_factory.mktemp("tiny-results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zoo, "checkpoint_dir", lambda: root / "checkpoints")
        zoo.save_checkpoint(tiny_adapter.model, zoo.RECIPES["dense"], zoo.checkpoint_path("dense"), seconds=0.0)
        _, full = run("zoo:dense", out_dir=root / "full", n_test=3, n_train=24, seed=7, progress=False)
        _, partial = run("zoo:dense", tasks=PARTIAL_TASKS, out_dir=root / "partial", n_test=3, n_train=24, seed=7, progress=False)
    return {"full": full.read_bytes(), "partial": partial.read_bytes()}


def as_model(raw: bytes, name: str, i: int) -> bytes:
    """The same valid run claimed for another model: a new name and weights hash, every score unchanged."""
    data = json.loads(raw)
    data["model"]["name"] = name
    data["model"]["weights_sha256"] = f"{i:064x}"
    return json.dumps(data).encode()
