"""Model specs: one string names any model fracbench can evaluate.

* ``zoo:NAME`` or just ``NAME`` — a zoo model (``dense``, ``sparse``, ...), from its shipped checkpoint;
* ``hf:PATH`` — a local HuggingFace causal-LM directory;
* ``hf:pretrained=PATH[,dtype=bfloat16]`` — the same in lm-eval's ``key=value`` model-args style;
* ``rotated:SPEC`` — the rotated twin of a native or HuggingFace GPT-2 model SPEC (the same function, its residual stream in a random basis;
  docs/metrics.md, "Basis sensitivity").

A model already in memory needs no spec: :func:`as_adapter` takes a :class:`ModelAdapter` as it is and wraps a
TransformerLens ``HookedTransformer`` (:mod:`.lens`).

Nothing is ever downloaded: a path that does not exist is an error, not a hub name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..config import check_dtype
from ..device import check_device
from ..registry import unknown_name_message
from . import zoo
from .adapter import ModelAdapter
from .twins import rotated_twin

HF_ARG_KEYS = ("pretrained", "dtype")  # lm-eval style keys an ``hf:`` spec accepts
SPEC_FORMS = "zoo:NAME (or just NAME), hf:PATH, hf:pretrained=PATH[,dtype=float32|float16|bfloat16], or rotated:SPEC"
TWIN_SEED = 0  # the rotation a rotated: spec draws


@dataclass(frozen=True)
class ModelSpec:
    """A parsed, checked model spec: what to load, without loading it yet."""

    kind: str  # "zoo" or "hf"
    target: str  # zoo recipe name, or the HuggingFace directory
    dtype: str  # one of DTYPES
    rotated: bool = False  # the model's rotated twin (native models)

    def load(self, device: str = "cpu") -> ModelAdapter:
        check_device(device)
        if self.kind == "zoo":
            adapter = zoo.load(self.target, device=device)
        else:
            from .hf import HFAdapter  # imported lazily: transformers is slow to import

            adapter = HFAdapter.from_pretrained(self.target, device=device, dtype=self.dtype)
        return rotated_twin(adapter, TWIN_SEED) if self.rotated else adapter


def resolve_model(spec: str, dtype: str = "float32") -> ModelSpec:
    """Parse ``spec`` and check that its model exists (checkpoint or directory) without loading it."""
    check_dtype(dtype)
    prefix, sep, rest = spec.partition(":")
    if prefix == "rotated" and sep:
        inner = resolve_model(rest, dtype)
        if inner.rotated:
            raise ValueError(f"model spec {spec!r}: {rest!r} is already rotated; a rotated twin is built once")
        return replace(inner, rotated=True)
    if not sep:
        return _zoo_spec(spec, dtype, bare=True)
    if prefix == "zoo":
        return _zoo_spec(rest, dtype, bare=False)
    if prefix == "hf":
        return _hf_spec(rest, dtype)
    raise ValueError(
        f"model spec {spec!r} has unknown prefix {prefix + ':'!r}; a model spec is {SPEC_FORMS}; "
        f"zoo models: {', '.join(zoo.RECIPES.names())}"
    )


def load_model(spec: str, device: str = "cpu", dtype: str = "float32") -> ModelAdapter:
    """The model named by ``spec`` behind the adapter interface, on ``device``."""
    check_device(device)
    return resolve_model(spec, dtype).load(device)


def as_adapter(model: object, device: str | None = None) -> ModelAdapter:
    """``model`` behind the adapter interface: a :class:`ModelAdapter` as it is (on ``device`` when given, else where it
    is), a TransformerLens ``HookedTransformer`` through :class:`~fracbench.models.lens.LensAdapter` (moved to ``device``
    when given). Anything else is refused, naming what is taken."""
    from .lens import LensAdapter, is_hooked_transformer

    if device is not None:
        check_device(device)
    if isinstance(model, ModelAdapter):
        wanted = torch.device(device) if device is not None else None
        if wanted is not None and (model.device.type != wanted.type or wanted.index not in (None, model.device.index)):
            raise ValueError(f"{model.info.name} is on {model.device}, the run asks for {device}; load it on {device} "
                             f"(load_model(spec, device={device!r})) or run on {model.device}")
        return model
    if is_hooked_transformer(model):
        return LensAdapter(model, device=device)
    raise TypeError(f"cannot evaluate a {type(model).__name__}: give a model spec string ({SPEC_FORMS}), a fracbench "
                    "ModelAdapter (load_model(spec)) or a TransformerLens HookedTransformer; a HuggingFace model is read "
                    "from its saved directory (hf:PATH)")


def _zoo_spec(name: str, dtype: str, bare: bool) -> ModelSpec:
    if name not in zoo.RECIPES:
        hint = f" (a directory of that name exists: for a HuggingFace model write 'hf:{name}')" if bare and Path(name).is_dir() else ""
        raise KeyError(f"{unknown_name_message('zoo model', name, zoo.RECIPES.names())}{hint}; a model spec is {SPEC_FORMS}")
    if dtype != "float32":
        raise ValueError(f"zoo models run in float32 only, got dtype {dtype!r}; drop --dtype for zoo:{name}")
    path = zoo.checkpoint_path(name)
    if not path.exists():
        raise FileNotFoundError(f"zoo checkpoint {path} is missing; rebuild it with `fracbench zoo train {name}`")
    return ModelSpec("zoo", name, dtype)


def _hf_spec(rest: str, dtype: str) -> ModelSpec:
    args = _parse_model_args(rest)
    if "pretrained" not in args:
        raise ValueError(f"hf model args {rest!r} name no model; write hf:pretrained=PATH (or hf:PATH)")
    spec_dtype = args.get("dtype", dtype)
    if "dtype" in args and dtype != "float32" and dtype != spec_dtype:
        raise ValueError(f"dtype given twice and differently: {spec_dtype!r} in the spec, {dtype!r} as an option; give it once")
    check_dtype(spec_dtype)
    path = Path(args["pretrained"]).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"HuggingFace model directory {str(path)!r} does not exist; fracbench never downloads, "
            "so save the model locally first (save_pretrained) and pass its directory"
        )
    return ModelSpec("hf", str(path), spec_dtype)


def _parse_model_args(rest: str) -> dict[str, str]:
    """``"PATH"`` -> {pretrained: PATH}; ``"pretrained=PATH,dtype=bfloat16"`` -> both keys."""
    first_key = rest.split(",", 1)[0].split("=", 1)[0]
    if "=" not in rest or first_key not in HF_ARG_KEYS:
        return {"pretrained": rest}  # a bare path (which may itself contain '=' or ',')
    args: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise ValueError(f"hf model arg {part!r} is not key=value; valid keys: {', '.join(HF_ARG_KEYS)}")
        if key not in HF_ARG_KEYS:
            raise ValueError(unknown_name_message("hf model arg", key, HF_ARG_KEYS))
        if key in args:
            raise ValueError(f"hf model arg {key!r} is given twice")
        args[key] = value
    return args


__all__ = ["ModelSpec", "as_adapter", "check_device", "load_model", "resolve_model"]
