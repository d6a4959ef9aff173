"""Shared fixtures: a tiny untrained native model, and a zoo made of it (no shipped checkpoint needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fracbench.models import zoo
from fracbench.models.native import NativeAdapter
from fracbench.models.tokenizer import CharTokenizer
from fracbench.models.transformer import Transformer, TransformerConfig


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`-n N`), each worker gets its share of the cores, and so do the processes its tests start:
    N workers at the default thread count would each use every core."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_adapter() -> NativeAdapter:
    """An untrained one-layer transformer: fast, deterministic, scores every task (badly)."""
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=len(CharTokenizer()), d_model=32, n_layers=1, n_heads=2, d_mlp=64, n_ctx=320)
    return NativeAdapter(Transformer(cfg), "tiny")


@pytest.fixture
def tiny_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_adapter: NativeAdapter) -> Path:
    """Every zoo name backed by a checkpoint of the tiny model, in a temporary checkpoint directory."""
    directory = tmp_path / "checkpoints"
    monkeypatch.setenv(zoo.CHECKPOINTS_ENV, str(directory))  # seen by processes the test starts too
    for name in zoo.RECIPES:
        zoo.save_checkpoint(tiny_adapter.model, zoo.RECIPES[name], zoo.checkpoint_path(name), seconds=0.0)
    return directory


SITE = "blocks.0.hook_resid_post"


def probe_section(latents: dict[str, tuple], n_test_examples: int, majority: int = 0):
    """A valid ProbeSection built by hand: per latent (test correct flags, control test correct
    flags, test labels, test example of each row[, lexical baseline's correct flags, all '0'
    if left out[, the untrained twin's correct flags, no twin if left out]]), one site, classes
    0 and 1 seen in fit."""
    from fracbench.results import LatentProbes, ProbeSection, Readout, SiteProbes, UntrainedBaseline, chance_of

    built = {}
    for name, (correct, control, labels, examples, *baselines) in latents.items():
        lexical, untrained = (baselines + [None, None])[:2]
        probes = SiteProbes(
            alpha=1.0,
            control_alpha=10.0,
            validation=Readout.from_correct([True, True, False]),
            control_validation=Readout.from_correct([False, True, False]),
            test=Readout.from_correct([c == "1" for c in correct]),
            control_test=Readout.from_correct([c == "1" for c in control]),
        )
        built[name] = LatentProbes(
            n_classes=max(2, max(labels) + 1),
            fit_classes=[0, 1],
            majority_class=majority,
            n_fit=10,
            test_labels=labels,
            test_examples=examples,
            chance=chance_of(labels, majority),
            n_unseen=sum(c not in (0, 1) for c in labels),
            lexical=Readout.from_correct([c == "1" for c in (lexical or "0" * len(labels))]),
            sites={SITE: probes},
            best_site=SITE,
            mlp=None,
            transfer={},
            untrained=None if untrained is None else UntrainedBaseline(site=SITE, test=Readout.from_correct([c == "1" for c in untrained])),
        )
    return ProbeSection(
        kind="ridge", alphas=[1.0, 10.0], max_train_rows=4096, max_test_rows=2048,
        n_fit_examples=8, n_validation_examples=2, n_test_examples=n_test_examples, latents=built, skipped={},
    )


def check_untrained_twin(adapter) -> None:
    """An adapter's untrained twin: the same architecture and sites, fresh weights, a function of the seed
    alone, built without touching the caller's random stream."""
    before = torch.random.get_rng_state()
    twin, again = adapter.untrained_twin(7), adapter.untrained_twin(7)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert twin.sites() == adapter.sites() and twin.info.n_params == adapter.info.n_params
    assert twin.info.weights_sha256 == again.info.weights_sha256 != adapter.info.weights_sha256
    assert twin.info.weights_sha256 != adapter.untrained_twin(8).info.weights_sha256
    assert next(twin.model.parameters()).dtype == next(adapter.model.parameters()).dtype
