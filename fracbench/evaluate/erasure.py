"""Decoded but not used: erase a latent's linearly decodable subspace and measure what the behaviour loses.

At one site (the probe's best, in a run) the latent's subspace is erased with LEACE (Belrose et al. 2023,
EleutherAI's ``concept-erasure``: the least-squares affine edit after which no linear classifier reads the latent
from the fit rows) on every text token of the test prompts, and the task's logit difference is measured. The
control is the same estimator fitted on a nonsense concept of the same rank (a seeded Gaussian one, independent of
the activations: its erased directions are uniformly random in the whitened space LEACE works in), several draws.
A latent the model uses costs more than the control; one that decodes but is not used costs what a random subspace
costs (docs/metrics.md, "Erasure").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from concept_erasure import LeaceEraser, LeaceFitter

from ..activations import LatentData, latent_datasets
from ..circuits.ablation import PromptBatches, last_token_logit_diffs
from ..config import RunConfig
from ..models.adapter import Encoding, ModelAdapter
from ..results import LatentErasure, ProbeSection, recorded
from ..tasks import Task
from ..tasks.base import stable_seed
from .decodability import examples

N_RANDOM_SUBSPACES = 8  # seeded draws of the same-rank control
RANDOM_CONCEPT_SCALE = 1e3  # a nonsense concept's scale: LEACE truncates singular values below 0.01, and the
# cross-covariance of an independent unit-scale concept is ~1/sqrt(rows); the erased directions do not depend on it


@dataclass
class Erasure:
    """Per test prompt, the logit difference of the model, with the latent erased, and with each control erased."""

    latent: str
    site: str
    rank: int  # dimensions LEACE erased (at most classes - 1)
    n_fit: int  # labelled tokens the eraser was fitted on
    full: torch.Tensor  # [N] float64
    erased: torch.Tensor  # [N]
    random: list[torch.Tensor]  # per control draw, [N]

    def section(self) -> LatentErasure:
        """What a results file keeps (the model's own logit differences are behaviour.test's)."""
        return LatentErasure(site=self.site, rank=self.rank, n_fit=self.n_fit, erased=recorded(self.erased),
                             controls=[recorded(r) for r in self.random])


def fit_eraser(activations: torch.Tensor, labels: torch.Tensor, n_classes: int) -> LeaceEraser:
    """LEACE for a latent's classes, from its fit rows [N, d] (float64). Without the package's trace constraint,
    so that the latent's and the control's erasers are the same estimator (the constraint mixes in an orthogonal
    projection when the erasure would raise the covariance's trace, which depends on the concept)."""
    z = torch.nn.functional.one_hot(labels, n_classes).double()
    return LeaceFitter.fit(activations.double(), z, constrain_cov_trace=False).eraser


def random_eraser(activations: torch.Tensor, rank: int, seed: int, draw: int) -> LeaceEraser:
    """LEACE fitted on a seeded Gaussian concept of ``rank`` dimensions, independent of the activations."""
    generator = torch.Generator().manual_seed(stable_seed("erasure_control", seed, draw))
    z = RANDOM_CONCEPT_SCALE * torch.randn(len(activations), rank, generator=generator, dtype=torch.float64)
    return LeaceFitter.fit(activations.double(), z, constrain_cov_trace=False).eraser


def on_device(eraser: LeaceEraser, device: torch.device | str) -> LeaceEraser:
    """The eraser with its matrices on ``device`` (fitting runs on the CPU rows the capture returns)."""
    bias = None if eraser.bias is None else eraser.bias.to(device)
    return LeaceEraser(eraser.proj_left.to(device), eraser.proj_right.to(device), bias)


def erased_rank(eraser: LeaceEraser) -> int:
    """How many directions the eraser removes (LEACE zeroes the columns it truncates)."""
    return int((eraser.proj_left.abs().sum(dim=0) > 0).sum())


def _on_text_tokens(eraser: LeaceEraser, enc: Encoding):
    """An intervention that erases every text token's activation; BOS and padding pass untouched, as the
    eraser was fitted on text tokens only (BOS lies far from their mean, and the edit is affine)."""
    text = ((enc.offsets[..., 1] > enc.offsets[..., 0]) & enc.attention_mask.bool())[..., None]

    def intervene(x: torch.Tensor) -> torch.Tensor:
        return torch.where(text, eraser(x.double()).to(x.dtype), x)

    return intervene


@torch.no_grad()
def logit_diffs_erased(adapter: ModelAdapter, batches: PromptBatches, site: str, eraser: LeaceEraser | None) -> torch.Tensor:
    """[N] float64 logit differences of the prompts, in example order, with ``eraser`` applied at ``site`` (None: the
    plain model)."""
    out = torch.empty(batches.n, dtype=torch.float64)
    for enc, targets, foils, idx in batches.batches:
        interventions = None if eraser is None else {site: _on_text_tokens(eraser, enc.to(adapter.device))}
        out[idx] = last_token_logit_diffs(adapter, enc, targets, foils, interventions).double().cpu()
    return out


def measure_erasure(adapter: ModelAdapter, task: Task, latent: str, site: str, fit: LatentData, test: PromptBatches,
                    seed: int, n_random: int = N_RANDOM_SUBSPACES, full: torch.Tensor | None = None) -> Erasure:
    """Fit LEACE for ``latent`` at ``site`` on its labelled fit rows (``fit``, captured at ``site``), and measure the
    test prompts' logit differences plain (``full``, when not already known), erased, and with ``n_random`` same-rank
    controls erased."""
    if n_random < 1:
        raise ValueError(f"n_random (control subspaces) must be >= 1, got {n_random}")
    if site not in fit.activations:
        raise ValueError(f"latent {latent!r}: the fit rows were captured at {sorted(fit.activations)}, not at {site!r}")
    x = fit.activations[site].reshape(len(fit.labels), -1)
    if len(torch.unique(fit.labels)) < 2:
        raise ValueError(f"task {task.name!r}, latent {latent!r}: the fit rows hold a single class; nothing to erase")
    eraser = on_device(fit_eraser(x, fit.labels, task.latent(latent).n_classes), adapter.device)
    rank = erased_rank(eraser)
    return Erasure(
        latent, site, rank, len(fit.labels),
        full=logit_diffs_erased(adapter, test, site, None) if full is None else full,
        erased=logit_diffs_erased(adapter, test, site, eraser),
        random=[logit_diffs_erased(adapter, test, site, on_device(random_eraser(x, rank, seed, d), adapter.device))
                for d in range(n_random)],
    )


def with_erasure(adapter: ModelAdapter, task: Task, section: ProbeSection, full: Sequence[float], config: RunConfig,
                 progress: bool = False) -> ProbeSection:
    """``section`` with every latent's erasure at its best site: LEACE fitted on the ``config.n_train`` train examples
    the probes drew from, measured on the ``config.n_test`` test examples behaviour measured (``full``: their logit
    differences)."""
    n_train, n_test, seed = config.n_train, config.n_test, config.seed
    sites = sorted({latent.best_site for latent in section.latents.values()})
    fit = latent_datasets(adapter, examples(task, "train", n_train, seed), list(section.latents), sites)  # one capture
    test = PromptBatches.build(adapter, task, examples(task, "test", n_test, seed), config.batch_size)  # tokenized once for all
    full_diffs = torch.tensor(full, dtype=torch.float64)
    latents = {}
    for name, latent in tqdm(section.latents.items(), desc=f"{task.name} erasure", disable=not progress, leave=False):
        e = measure_erasure(adapter, task, name, latent.best_site, fit[name], test, seed, full=full_diffs)
        latents[name] = latent.model_copy(update={"erasure": e.section()})
    return section.model_copy(update={"latents": latents})
