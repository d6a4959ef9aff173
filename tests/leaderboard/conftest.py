"""Real results files of the tiny model, made once per session: the full suite and a two-task subset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fracbench.config import RunConfig
from fracbench.leaderboard import build_site, load_board
from fracbench.leaderboard.table import Entry
from fracbench.models import zoo
from fracbench.results import results_json
from fracbench.runner import run

BOARD = Path(__file__).resolve().parents[2] / "leaderboard"  # the project's own board

PARTIAL_TASKS = ["quote_close", "bracket_depth"]


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory: pytest.TempPathFactory, tiny_adapter) -> dict[str, bytes]:
    """``{"full": ..., "partial": ...}``: `fracbench run` files of the tiny untrained model (n_test 3, seed 7)."""
    root = tmp_path_factory.mktemp("tiny-results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zoo, "checkpoint_dir", lambda: root / "checkpoints")
        zoo.save_checkpoint(tiny_adapter.model, zoo.RECIPES["dense"], zoo.checkpoint_path("dense"), seconds=0.0)
        _, full = run("zoo:dense", RunConfig(n_test=3, n_train=24, seed=7), root / "full", progress=False)
        _, partial = run("zoo:dense", RunConfig(tasks=PARTIAL_TASKS, n_test=3, n_train=24, seed=7), root / "partial", progress=False)
    return {"full": results_json(full.read_bytes()), "partial": results_json(partial.read_bytes())}  # as JSON, to edit


@pytest.fixture(scope="session")
def project_board() -> list[Entry]:
    """The project's board, every entry validated and scored once per session (about 20 s an entry): `load_board`
    raises, naming each bad entry, when the board does not check."""
    return load_board(BOARD)


@pytest.fixture(scope="session")
def project_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's board built afresh into a temporary folder, once per session."""
    return build_site(BOARD, tmp_path_factory.mktemp("site") / "site")


def as_model(raw: bytes, name: str, i: int) -> bytes:
    """The same valid run claimed for another model: a new name and weights hash, every score unchanged."""
    data = json.loads(raw)
    data["model"]["name"] = name
    data["model"]["weights_sha256"] = f"{i:064x}"
    return json.dumps(data).encode()
