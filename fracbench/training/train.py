"""Training the zoo: a corpus built from the tasks' train splits plus filler code, packed
into fixed-length sequences, and a plain AdamW loop (optionally weight-sparse)."""

from __future__ import annotations

import math
import random

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..models.tokenizer import CharTokenizer
from ..models.transformer import Transformer
from ..models.zoo import Recipe
from ..tasks import TASKS
from ..tasks.base import stable_seed
from ..tasks.code import filler_lines
from .sparsity import density_at, sparsify_


def build_corpus(recipe: Recipe, tokenizer: CharTokenizer) -> tuple[list[list[int]], int]:
    """Documents (token ids, no BOS) and how many come first from tasks: each task's train
    examples as prompt + target, then filler code."""
    docs = []
    for name in TASKS:
        n = round(recipe.examples_per_task * recipe.task_weights.get(name, 1.0))
        for ex in TASKS[name].examples("train", n, seed=recipe.seed, cue=recipe.corpus_cue):
            docs.append(tokenizer.encode(ex.prompt + ex.target, bos=False))
    rng = random.Random(stable_seed("filler", recipe.seed))
    n_filler = int(len(docs) * recipe.filler_fraction / (1 - recipe.filler_fraction))
    n_task_docs = len(docs)
    docs += [tokenizer.encode(filler_lines(rng, 1, 4), bos=False) for _ in range(n_filler)]
    return docs, n_task_docs


def packed_batch(
    docs: list[list[int]], n_task_docs: int, rng: random.Random, batch_size: int, seq_len: int, bos: int, answer_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of BOS-separated random documents, [B, seq_len + 1] (inputs [:, :-1], targets [:, 1:]),
    and per-target loss weights [B, seq_len]: ``answer_weight`` where the target is a task's answer."""
    rows, weights = [], []
    for _ in range(batch_size):
        row: list[int] = []
        weight: list[float] = []
        while len(row) < seq_len + 1:
            i = rng.randrange(len(docs))
            row += [bos, *docs[i]]
            weight += [1.0] * len(docs[i]) + [1.0]  # weight[t] belongs to the target row[t + 1]
            if i < n_task_docs:
                weight[-2] = answer_weight
        rows.append(row[: seq_len + 1])
        weights.append(weight[:seq_len])
    return torch.tensor(rows), torch.tensor(weights)


def train(recipe: Recipe, device: str = "cpu", progress: bool = True) -> Transformer:
    """Train (or, for ``train=False``, just initialize) the recipe's model, deterministically from its seed."""
    torch.manual_seed(recipe.seed)
    tokenizer = CharTokenizer()
    model = Transformer(recipe.model_config(len(tokenizer))).to(device)
    if not recipe.train:
        return model.eval()
    docs, n_task_docs = build_corpus(recipe, tokenizer)
    rng = random.Random(stable_seed("batches", recipe.seed))
    matrices = model.weight_matrices()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.95), weight_decay=0.0)
    model.train()
    bar = tqdm(range(recipe.steps), desc=f"zoo train {recipe.name}", disable=not progress)
    for step in bar:
        lr = recipe.lr * min(1.0, (step + 1) / recipe.warmup)
        lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / recipe.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        batch, weight = packed_batch(docs, n_task_docs, rng, recipe.batch_size, recipe.seq_len, tokenizer.bos_id, recipe.answer_weight)
        batch, weight = batch.to(device), weight.to(device)
        logits = model(batch[:, :-1])
        loss = (F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), reduction="none") * weight.flatten()).sum() / weight.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sparsify_(matrices, density_at(step, recipe.steps, recipe.density), recipe.min_per_neuron)
        model.enforce_groups()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()
