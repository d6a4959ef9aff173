"""The zoo: reference models of known organization, trained here, shipped as safetensors.

``dense`` and ``sparse`` learn the tasks honestly (the spurious cue is random in
their corpus); ``shortcut`` is trained where the cue always agrees with the answer,
so it can solve the in-distribution splits without the real variable; ``random`` is
the untrained architecture. Training them is :mod:`fracbench.training`'s job; this module describes them
(:class:`Recipe`) and reads and writes their checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..registry import Registry
from . import compiled
from .native import NativeAdapter
from .tokenizer import ALPHABET, CharTokenizer
from .transformer import Transformer, TransformerConfig

@dataclass(frozen=True)
class Recipe:
    """Everything that determines a zoo model: same recipe, same seed, same weights (on one platform)."""

    name: str
    description: str
    seed: int = 0
    config: dict = field(default_factory=dict)  # TransformerConfig fields other than vocab_size
    corpus_cue: str = "random"  # "random": the spurious cue carries no signal; "agree": it always points at the answer
    train: bool = True  # False leaves the initialization untouched (the random-init control)
    steps: int = 3000
    batch_size: int = 16  # sequences per step
    seq_len: int = 256  # tokens per packed sequence
    lr: float = 3e-3  # peak AdamW learning rate, after linear warm-up, cosine decay to 10%
    warmup: int = 100
    examples_per_task: int = 20_000  # train-split examples drawn from each task, times its weight
    task_weights: dict = field(default_factory=lambda: {"copy_name": 2.0})  # induction forms slowest; others weigh 1
    filler_fraction: float = 0.1  # share of corpus documents that are plain filler code
    answer_weight: float = 3.0  # loss weight of each task document's last character, the answer
    density: float = 1.0  # final fraction of nonzero entries in every weight matrix (1.0 = dense)
    min_per_neuron: int = 4  # weight-sparse: nonzeros every row and column keeps
    pruned_from: str = ""  # a zoo model whose checkpoint this recipe magnitude-prunes instead of training ("": none)
    prune_fraction: float = 0.0  # with pruned_from: the share of each weight matrix zeroed, smallest magnitudes first
    hand_set: bool = False  # weights set by hand (fracbench.models.compiled) instead of training

    def model_config(self, vocab_size: int) -> TransformerConfig:
        return TransformerConfig(vocab_size=vocab_size, **self.config)


ARCH = {"d_model": 96, "n_layers": 3, "n_heads": 4, "d_mlp": 384}

RECIPES: Registry[Recipe] = Registry("zoo model")
for _recipe in (
    Recipe("dense", "ordinary dense training on the honest corpus", config=ARCH),
    # Weight-sparse training learns the name-matching tasks more slowly: with the dense corpus and
    # 3,000 steps the sparse model stopped at 92-93% on copy_name (densities 0.15 and 0.25), and with
    # copy_name at 4x, at 94.5% on set_or_string. So its corpus weighs both up and it trains 10% longer.
    Recipe(
        "sparse",
        "weight-sparse training (Gao et al.): top-k magnitude per matrix, annealed to 25% density",
        config=ARCH,
        density=0.25,
        task_weights={"copy_name": 4.0, "set_or_string": 2.0},
        steps=3300,
    ),
    Recipe("shortcut", "dense training on a corpus whose spurious cue always agrees with the answer", config=ARCH, corpus_cue="agree"),
    Recipe("random", "the untrained architecture: the random-init control", config=ARCH, train=False),
    # Fractured by construction (issue 14): two sub-networks of half width, each trained only where the router sends it;
    # the router's threshold is the length axis of fracbench's reuse measurement (docs/metrics.md, scores version 4)
    # Each half-width group learns only from the predictions the router gives it: with the dense recipe (3,000 steps) the
    # model stopped at 0.52 on copy_name and 0.87 on set_or_string; with copy_name 4x, set_or_string 2x and 6,000 steps,
    # at 0.70 on copy_name (short prompts 0.96, long ones 0.54: the long-prompt group had not learned to copy). So it
    # weighs copy_name 8x and trains 10,000 steps.
    Recipe("routed", "two half-width sub-networks joined by a hard router on prompt length (< 32 characters: the first)",
           config={**ARCH, "n_groups": 2, "route_at": 32}, task_weights={"copy_name": 8.0, "set_or_string": 2.0}, steps=10000),
    Recipe("pruned", "dense with the smallest 50% of each weight matrix zeroed, no retraining (the gaming control)",
           config=ARCH, train=False, pruned_from="dense", prune_fraction=0.5),
    # Coherent by construction (issue 14): quote_close and bracket_depth on circuits known node by node
    Recipe("compiled", "weights set by hand: quote_close and bracket_depth on circuits known node by node (models.compiled)",
           config=compiled.CONFIG, train=False, hand_set=True),
):
    RECIPES.register(_recipe.name, _recipe)

SEEDS = (1, 2)  # further training seeds of each trained recipe: a known answer is an effect across seeds, not one checkpoint
SEEDED = ("dense", "sparse", "shortcut")
for _base in SEEDED:
    for _seed in SEEDS:
        _recipe = RECIPES[_base]
        RECIPES.register(f"{_base}-s{_seed}", dataclasses.replace(
            _recipe, name=f"{_base}-s{_seed}", seed=_seed, description=f"{_recipe.description} (training seed {_seed})"))


def reference_models() -> list[str]:
    """The zoo without its further training seeds: what `fracbench run` evaluates by default."""
    return [name for name in RECIPES if RECIPES[name].seed == 0]


CHECKPOINTS_ENV = "FRACBENCH_CHECKPOINTS"  # a directory of zoo checkpoints to use instead of the package's


def checkpoint_dir() -> Path:
    """Where the zoo's checkpoints are: the directory :data:`CHECKPOINTS_ENV` names, else the package's own (a Ray
    executor forwards the variable to its workers)."""
    chosen = os.environ.get(CHECKPOINTS_ENV)
    return Path(chosen) if chosen else Path(str(resources.files("fracbench.models") / "checkpoints"))


def checkpoint_path(name: str) -> Path:
    RECIPES[name]  # unknown names raise with the valid ones
    return checkpoint_dir() / f"{name}.safetensors"


def save_checkpoint(model: Transformer, recipe: Recipe, path: Path, seconds: float) -> None:
    """Write atomically: a temporary file in the same directory, renamed into place."""
    meta = {
        "config": json.dumps(model.cfg.to_dict()),
        "recipe": json.dumps(asdict(recipe)),
        "alphabet": json.dumps(ALPHABET),
        "train_seconds": f"{seconds:.1f}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp, metadata=meta)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; checkpoints ship to everyone
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path) -> tuple[Transformer, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    cfg = TransformerConfig(**json.loads(meta["config"]))
    model = Transformer(cfg)
    model.load_state_dict(load_file(str(path)))
    return model.eval(), meta


def load(name: str, device: str = "cpu") -> NativeAdapter:
    """The zoo model ``name`` behind the adapter interface."""
    path = checkpoint_path(name)
    if not path.exists():
        raise FileNotFoundError(f"zoo checkpoint {path} is missing; rebuild it with `fracbench zoo train {name}`")
    model, meta = load_checkpoint(path)
    return NativeAdapter(model, f"zoo:{name}", CharTokenizer(json.loads(meta["alphabet"])), device=device)
