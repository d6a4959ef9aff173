"""Measuring decodability: glue from a task's examples, through the adapter's activations, to probes.

For every latent of a task, linear probes are fitted at every site on the rows of the
train split's *fit* examples, for the real labels and for a control task (Hewitt &
Liang 2019, a diagnostic of the probe) at once; the *validation* examples (the other
train examples) choose the best site; the test split's rows give every reported
accuracy, the lexical baseline's included (what the current token's identity alone
predicts; D is measured above it). The best site's probe is then read on every OOD split
(transfer), and an MLP probe there gives the nonlinear gap. The result is a
:class:`~fracbench.results.ProbeSection` of raw per-row correctness from which
:mod:`fracbench.scoring` computes D. Probes stay task-agnostic: they see tensors.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..activations import LatentData, latent_datasets
from ..config import RunConfig
from ..device import check_device
from ..models.adapter import ModelAdapter
from ..probes import LinearProbes
from ..probes.control import control_labels
from ..probes.linear import DEFAULT_ALPHAS
from ..results import LatentProbes, MLPReadout, ProbeSection, Readout, SiteProbes, Transfer, UntrainedBaseline, best_site_of, chance_of
from ..tasks import Example, Task
from ..tasks.base import stable_seed
from .lexical import lexical_predictions

MAX_TRAIN_ROWS = 4096  # labelled tokens per latent from the train examples (fit + validation), a seeded subsample
MAX_TEST_ROWS = 2048  # labelled tokens per latent from the test examples, and from each OOD split's
VALIDATION_FRACTION = 0.2  # share of the train examples (not rows) held out to choose the best site
MLP_HIDDEN = 64  # hidden units of the nonlinear probe at the best site
RESIDUAL_SITE = re.compile(r"blocks\.(\d+)\.hook_resid_(pre|mid|post)")
RESIDUAL_ORDER = {"pre": 0, "mid": 1, "post": 2}  # within a block, in depth order


def default_sites(adapter: ModelAdapter) -> list[str]:
    """The residual stream at every layer boundary, shallowest first: ``blocks.0.hook_resid_pre``,
    then each block's ``hook_resid_mid`` (models whose blocks have one) and ``hook_resid_post``.

    ``blocks.{l}.hook_resid_pre`` for l > 0 is left out: it is the previous block's
    ``hook_resid_post``. Works for any adapter that exposes TransformerLens residual sites.
    """
    keyed = []
    for name in adapter.sites():
        m = RESIDUAL_SITE.fullmatch(name)
        if m and not (m[2] == "pre" and int(m[1]) > 0):
            keyed.append(((int(m[1]), RESIDUAL_ORDER[m[2]]), name))
    if not keyed:
        raise ValueError(f"{adapter.info.name} exposes no residual-stream sites (blocks.{{l}}.hook_resid_*); pass sites= explicitly")
    return [name for _, name in sorted(keyed)]


@dataclass(frozen=True)
class ProbeSettings:
    """How probing runs beyond the run's sizes and seed: at most ``max_train_rows`` / ``max_test_rows`` labelled tokens
    per latent, the ridge penalties ``alphas``, and the optional readouts: the MLP probe (``mlp``), the OOD transfer
    (``transfer``) and the untrained twin's floor (``untrained``). Turning a readout off is for quick looks."""

    max_train_rows: int = MAX_TRAIN_ROWS
    max_test_rows: int = MAX_TEST_ROWS
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    mlp: bool = True
    transfer: bool = True
    untrained: bool = True


QUICK_LOOK = ProbeSettings(mlp=False, transfer=False)  # the linear probes in distribution only


def measure_decodability(adapter: ModelAdapter, task: Task, config: RunConfig, sites: Sequence[str] | None = None, *,
                         settings: ProbeSettings = ProbeSettings(), progress: bool = False) -> ProbeSection:
    """Probe every latent of ``task`` at ``sites`` (default: :func:`default_sites`) of ``adapter``.

    ``config.n_train`` train examples are split by example into fit and validation parts; ``config.n_test`` examples
    of the test split and of every OOD split are read, ``config.batch_size`` at a time; the probes are fitted on
    ``config.device``. With ``settings.untrained`` the same probes are fitted on the adapter's untrained twin too (the
    architecture's floor for D; skipped for adapters that cannot build one). Deterministic in ``config.seed``. A latent
    whose fit rows hold a single class (nothing to decode) is recorded in ``skipped`` with the reason; ``ValueError``
    names the task and latents when no latent can be probed, and names the option for unusable settings.
    """
    n_train, n_test, seed, batch_size, device = config.n_train, config.n_test, config.seed, config.batch_size, config.device
    max_train_rows, max_test_rows, alphas = settings.max_train_rows, settings.max_test_rows, settings.alphas
    mlp, transfer, untrained = settings.mlp, settings.transfer, settings.untrained
    check_probe_settings(n_train, n_test, max_train_rows, max_test_rows)
    check_device(device)
    sites = list(default_sites(adapter) if sites is None else sites)
    widths = site_widths(adapter, sites)
    names = [spec.name for spec in task.latents]
    ood = [s.name for s in task.splits() if s.is_ood] if transfer else []
    n_val = max(1, round(VALIDATION_FRACTION * n_train))
    val_examples = torch.from_numpy(stream(seed, task.name, "validation").permutation(n_train)[:n_val].copy())

    twin = untrained_twin(adapter, seed) if untrained else None

    def rows(split: str, max_rows: int, latents: list[str], model: ModelAdapter = adapter) -> dict[str, LatentData]:
        """Each latent's rows of the examples of ``split``, at most ``max_rows`` each (seeded subsample): the same
        rows for the model and its twin (same tokenizer, same subsample)."""
        n = n_train if split == "train" else n_test
        data = latent_datasets(model, examples(task, split, n, seed), latents, sites, batch_size=batch_size)
        return {name: subsample(d, max_rows, stream(seed, task.name, name, split)) for name, d in data.items()}

    total = 2 + len(ood) + len(names) + (twin is not None)
    with tqdm(total=total, desc=f"{task.name} probes", disable=not progress, leave=False) as bar:
        train, test = rows("train", max_train_rows, names), rows("test", max_test_rows, names)
        bar.update(2)
        fits, skipped = {}, {}
        for spec in task.latents:
            where = f"task {task.name!r}, latent {spec.name!r}"
            try:
                fits[spec.name] = fit_latent(where, train[spec.name], test[spec.name], val_examples, sites, widths, seed,
                                             tuple(alphas), device, n_train, mlp)
            except SingleClassError as err:
                skipped[spec.name] = err.reason
            bar.update(1)
        if not fits:
            raise ValueError("; ".join(f"task {task.name!r}, latent {k!r}: {v}" for k, v in skipped.items()) + "; no latent can be probed")
        for split in ood:
            for name, data in rows(split, max_test_rows, list(fits)).items():
                fits[name].transfer[split] = read_transfer(fits[name], data)
            bar.update(1)
        if twin is not None:
            twin_train, twin_test = rows("train", max_train_rows, list(fits), twin), rows("test", max_test_rows, list(fits), twin)
            for name, fit in fits.items():
                where = f"task {task.name!r}, latent {name!r} (untrained twin)"
                baseline = fit_latent(where, twin_train[name], twin_test[name], val_examples, sites, widths, seed, tuple(alphas), device,
                                      n_train, mlp=False)
                fit.untrained = UntrainedBaseline(site=baseline.best, test=baseline.sites[baseline.best].test)
            bar.update(1)
    return ProbeSection(
        kind="ridge",
        alphas=[float(a) for a in alphas],
        max_train_rows=max_train_rows,
        max_test_rows=max_test_rows,
        n_fit_examples=n_train - n_val,
        n_validation_examples=n_val,
        n_test_examples=n_test,
        latents={name: fits[name].result(spec.n_classes) for name, spec in zip(names, task.latents) if name in fits},
        skipped=skipped,
        test_cue_agrees="".join("1" if ex.cue_agrees else "0" for ex in examples(task, "test", n_test, seed)),
    )


@dataclass
class LatentFit:
    """One latent's fitted probes and readouts, until its OOD transfer is filled in."""

    fit_classes: torch.Tensor  # [C] classes present in the fit rows, ascending
    majority: int  # the fit rows' most frequent class
    n_fit: int
    test: LatentData
    lexical: Readout  # the type-level baseline on the test rows
    sites: dict[str, SiteProbes]  # depth order
    best: str
    best_probes: LinearProbes  # the fit that holds the best site's probe
    best_group: list[str]  # the sites that fit stacked, in its order
    mlp: MLPReadout | None
    transfer: dict[str, Transfer] = field(default_factory=dict)
    untrained: UntrainedBaseline | None = None

    def result(self, n_classes: int) -> LatentProbes:
        labels = self.test.labels
        return LatentProbes(
            n_classes=n_classes,
            fit_classes=self.fit_classes.tolist(),
            majority_class=self.majority,
            n_fit=self.n_fit,
            test_labels=labels.tolist(),
            test_examples=self.test.text_index.tolist(),
            chance=chance_of(labels.tolist(), self.majority),
            n_unseen=int((~torch.isin(labels, self.fit_classes)).sum()),
            lexical=self.lexical,
            sites=self.sites,
            best_site=self.best,
            mlp=self.mlp,
            transfer=self.transfer,
            untrained=self.untrained,
        )


def fit_latent(where: str, tr: LatentData, te: LatentData, val_examples: torch.Tensor, sites: list[str], widths: dict[str, int],
               seed: int, alphas: tuple[float, ...], device: str | None, n_train: int, mlp: bool) -> LatentFit:
    """Real and control probes at every site on the fit rows; readouts on validation and test rows;
    the lexical baseline on the test rows; the best site by validation accuracy; the MLP probe there."""
    val = torch.isin(tr.text_index, val_examples)
    fit = ~val
    control = control_labels(torch.cat([tr.token_ids, te.token_ids]), torch.cat([tr.labels, te.labels]), seed)
    control_tr, control_te = control[: len(tr.labels)], control[len(tr.labels) :]
    check_rows(where, tr.labels[fit], control_tr[fit], int(val.sum()), n_train)

    Y = torch.stack([tr.labels[fit], control_tr[fit]])  # [2, N_fit]: real and control labels, one fit
    site_probes, fitted = {}, {}
    for group in width_groups(sites, widths):
        probes = LinearProbes(kind="ridge", alphas=alphas, device=device).fit(stack(tr, group, fit), Y)
        pred_val = probes.predict(stack(tr, group, val)).cpu()  # [S, 2, N_val]
        pred_test = probes.predict(stack(te, group)).cpu()  # [S, 2, N_test]
        alpha = probes.alpha_.cpu()
        for i, site in enumerate(group):
            fitted[site] = (probes, group)
            site_probes[site] = SiteProbes(
                alpha=float(alpha[i, 0]),
                control_alpha=float(alpha[i, 1]),
                validation=Readout.from_correct((pred_val[i, 0] == tr.labels[val]).tolist()),
                control_validation=Readout.from_correct((pred_val[i, 1] == control_tr[val]).tolist()),
                test=Readout.from_correct((pred_test[i, 0] == te.labels).tolist()),
                control_test=Readout.from_correct((pred_test[i, 1] == control_te).tolist()),
            )
    site_probes = {s: site_probes[s] for s in sites}  # depth order, whatever the width groups
    best = best_site_of(site_probes)
    readout = mlp_at(best, tr, te, fit, site_probes[best].test.accuracy, seed, device) if mlp else None
    majority = int(torch.bincount(tr.labels[fit]).argmax())  # the first (smallest) class on ties
    lexical = lexical_predictions(tr.token_ids[fit], tr.labels[fit], te.token_ids, majority)
    return LatentFit(
        fit_classes=tr.labels[fit].unique(),
        majority=majority,
        n_fit=int(fit.sum()),
        test=te,
        lexical=Readout.from_correct((lexical == te.labels.cpu()).tolist()),
        sites=site_probes,
        best=best,
        best_probes=fitted[best][0],
        best_group=fitted[best][1],
        mlp=readout,
    )


def untrained_twin(adapter: ModelAdapter, seed: int) -> ModelAdapter | None:
    """The adapter's untrained twin, seeded from the run's seed; None when the adapter cannot build one."""
    try:
        return adapter.untrained_twin(stable_seed("untrained twin", seed))
    except NotImplementedError:
        return None


def read_transfer(fit: LatentFit, data: LatentData) -> Transfer:
    """The best site's in-distribution probe on an OOD split's rows; labels it never saw count wrong."""
    predicted = fit.best_probes.predict(stack(data, fit.best_group)).cpu()[fit.best_group.index(fit.best), 0]
    readout = Readout.from_correct((predicted == data.labels).tolist())
    unseen = (~torch.isin(data.labels, fit.fit_classes)).tolist()
    return Transfer(n=len(unseen), accuracy=readout.accuracy, n_unseen=sum(unseen), correct=readout.correct,
                    unseen="".join("1" if u else "0" for u in unseen))


def mlp_at(site: str, tr: LatentData, te: LatentData, fit: torch.Tensor, linear_accuracy: float, seed: int,
           device: str | None) -> MLPReadout:
    """An MLP probe at ``site`` on the fit rows, read on the test rows: the linear-vs-nonlinear gap."""
    from ..probes import MLPProbes

    with one_thread():
        probe = MLPProbes(hidden=MLP_HIDDEN, seed=seed, device=device).fit(stack(tr, [site], fit), tr.labels[fit][None])
        predicted = probe.predict(stack(te, [site])).cpu()[0, 0]
    test = Readout.from_correct((predicted == te.labels).tolist())
    return MLPReadout(site=site, hidden=MLP_HIDDEN, test=test, gap=test.accuracy - linear_accuracy)


# -- helpers ---------------------------------------------------------------------------


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one intra-op torch thread, then restore the previous count.

    The MLP probe's float32 reductions (matmuls, sums over a minibatch) were split across
    threads differently from one process to the next: two runs of the same seed were seen
    to differ on 3 of 2048 test rows with 2 threads. With one thread each kernel sums in
    one order, so the same seed gives the same numbers; it is also faster for these many
    small operations (bracket_depth on the dense zoo model: about 45 s with 2 threads,
    7 to 15 s with 1, on a shared 2-core machine). It changes a process-wide setting, so
    other threads calling torch meanwhile also run on one thread.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_probe_settings(n_train: int, n_test: int, max_train_rows: int, max_test_rows: int) -> None:
    """ValueErrors naming the argument, before any work."""
    if n_train < 2:
        raise ValueError(
            f"n_train (--n-train) must be at least 2 train examples (probes are fitted on some and the best site "
            f"is chosen on others), got {n_train}"
        )
    if n_test < 1:
        raise ValueError(f"n_test (--n) must be at least 1 example per split, got {n_test}")
    if max_train_rows < 2 or max_test_rows < 1:
        raise ValueError(f"max_train_rows must be >= 2 and max_test_rows >= 1, got {max_train_rows} and {max_test_rows}")


class SingleClassError(ValueError):
    """A latent whose fit rows hold one class: nothing to decode. The run records it as skipped."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.reason = reason


def check_rows(where: str, fit_labels: torch.Tensor, fit_control: torch.Tensor, n_val: int, n_train: int) -> None:
    """A probe needs two classes among the fit rows, and validation rows to choose a site."""
    advice = f"raise --n-train (now {n_train}) so more examples are probed"
    for what, labels in (("the latent", fit_labels), ("its control task", fit_control)):
        classes = labels.unique().tolist()
        if len(classes) < 2:
            raise SingleClassError(where, f"the {len(labels)} fit rows hold a single class of {what} ({classes[0]}), so there is "
                                          f"nothing to decode; if the train split has other classes, {advice}")
    if n_val == 0:
        raise ValueError(f"{where}: no validation rows to choose the best site from; {advice}")


def site_widths(adapter: ModelAdapter, sites: Sequence[str]) -> dict[str, int]:
    """Features per token at each site (its per-token shape flattened); a site without a fixed shape is refused."""
    if not sites:
        raise ValueError("sites is empty; name at least one site to probe")
    adapter.check_sites(sites)
    shapes = adapter.sites()
    for s in sites:
        if any(d < 1 for d in shapes[s]):
            raise ValueError(f"site {s!r} has shape {shapes[s]} that varies with the input; probes need a fixed width")
    return {s: math.prod(shapes[s]) for s in sites}


def width_groups(sites: list[str], widths: dict[str, int]) -> list[list[str]]:
    """Sites grouped by width, each group in depth order: one probe fit stacks sites of one width."""
    groups: dict[int, list[str]] = {}
    for s in sites:
        groups.setdefault(widths[s], []).append(s)
    return list(groups.values())


def subsample(data: LatentData, max_rows: int, rng: np.random.Generator) -> LatentData:
    """At most ``max_rows`` rows, drawn uniformly without replacement, kept in row order; features flattened."""
    n = len(data.labels)
    keep = torch.from_numpy(np.sort(rng.choice(n, max_rows, replace=False))) if n > max_rows else torch.arange(n)
    return LatentData({s: a[keep].flatten(1) for s, a in data.activations.items()}, data.labels[keep], data.token_ids[keep],
                      data.text_index[keep])


def stack(data: LatentData, sites: list[str], rows: torch.Tensor | None = None) -> torch.Tensor:
    """X [S, N, d] for the probes: the rows (all, or a boolean mask) at each site."""
    X = torch.stack([data.activations[s] for s in sites])
    return X if rows is None else X[:, rows]


def examples(task: Task, split: str, n: int, seed: int) -> list[Example]:
    """The split's examples with its own cue: random on train, test and OOD, so that no surface cue stands in
    for a latent in the rows a probe is fitted or scored on (D version 3)."""
    exs = task.examples(split, n, seed)
    if not exs:
        raise ValueError(f"task {task.name!r} gave no examples for split {split!r} (asked for {n})")
    return exs


def stream(seed: int, *key: str) -> np.random.Generator:
    """A numpy Generator for one purpose: the same (seed, key) always gives the same draws."""
    return np.random.default_rng([seed % 2**64, zlib.crc32("/".join(key).encode())])
