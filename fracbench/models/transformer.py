"""The native transformer: a small GPT, read top-down (attention, MLP, block, config, model).

Every activation that interpretability work touches passes through a
:class:`HookPoint` named as in TransformerLens (``blocks.0.attn.hook_q``,
``blocks.1.mlp.hook_post``, ...). Every hook point always exists; with no
hook set each is the identity, so a hooked forward equals a plain one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .hooks import HookPoint


def abs_topk(x: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest-magnitude entries of the last dimension, zero the rest (Gao et al.'s AbsTopK)."""
    idx = x.abs().topk(k, dim=-1).indices
    return torch.zeros_like(x).scatter(-1, idx, x.gather(-1, idx))


class GroupedLayerNorm(nn.Module):
    """LayerNorm over each of ``n_groups`` equal slices of the channels (one per sub-network), then one gain and
    bias per channel; with one group it is ``nn.LayerNorm``'s function (the zoo's ungrouped models use that)."""

    def __init__(self, d_model: int, n_groups: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.n_groups, self.eps = n_groups, eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = x.unflatten(-1, (self.n_groups, -1))  # [..., G, d_model / G]
        return F.layer_norm(groups, groups.shape[-1:], eps=self.eps).flatten(-2) * self.weight + self.bias


def layer_norm(cfg: TransformerConfig) -> nn.Module:
    return nn.LayerNorm(cfg.d_model) if cfg.n_groups == 1 else GroupedLayerNorm(cfg.d_model, cfg.n_groups)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.k = nn.Linear(cfg.d_model, cfg.d_model)
        self.v = nn.Linear(cfg.d_model, cfg.d_model)
        self.o = nn.Linear(cfg.d_model, cfg.d_model)
        self.hook_q = HookPoint()  # [B, T, H, d_head]
        self.hook_k = HookPoint()  # [B, T, H, d_head]
        self.hook_v = HookPoint()  # [B, T, H, d_head]
        self.hook_pattern = HookPoint()  # [B, H, T_query, T_key], rows sum to 1
        self.hook_z = HookPoint()  # [B, T, H, d_head], heads' outputs before the output projection

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, query_at: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, d_model] -> [B, T, d_model]; with ``query_at`` ([B] positions), only those positions' queries are
        computed (keys and values at every position): [B, 1, d_model], what the full forward gives there."""
        B, T, _ = x.shape  # batch, sequence, d_model
        split = lambda t: t.view(B, t.shape[1], self.n_heads, self.d_head)  # noqa: E731
        rows = torch.arange(B, device=x.device)
        q = self.hook_q(split(self.q(x if query_at is None else x[rows, query_at][:, None])))
        k = self.hook_k(split(self.k(x)))
        v = self.hook_v(split(self.v(x)))
        if query_at is None:
            allowed = torch.ones(T, T, dtype=torch.bool, device=x.device).tril() & key_mask[:, None, None, :]  # [B, 1, T, T]
        else:  # each row's one query sees the keys up to its position
            allowed = (torch.arange(T, device=x.device) <= query_at[:, None]) & key_mask.bool()
            allowed = allowed[:, None, None, :]  # [B, 1, 1, T]
        heads = lambda t: t.transpose(1, 2)  # noqa: E731  [B, T, H, d_head] <-> [B, H, T, d_head]
        # Evaluation uses the fused kernel and materializes the pattern only for a hook that reads or edits it; a
        # read-only hook leaves the output bit-identical to a plain forward. Training keeps the explicit softmax the
        # zoo's checkpoints were trained with, so `fracbench zoo train` reproduces them bit for bit.
        if self.training or self.hook_pattern.fn is not None:
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.d_head)
            computed = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
            pattern = self.hook_pattern(computed)
            if self.training or pattern is not computed:  # training, or a hook that edited the pattern
                return self.o(self.hook_z(torch.einsum("bhqk,bkhd->bqhd", pattern, v)).flatten(2))
        z = heads(F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=allowed))
        z = self.hook_z(z)
        return self.o(z.flatten(2))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.fc_in = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.fc_out = nn.Linear(cfg.d_mlp, cfg.d_model)
        self.act_topk = cfg.act_topk
        self.hook_pre = HookPoint()  # [B, T, d_mlp]
        self.hook_post = HookPoint()  # [B, T, d_mlp], the neurons

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.hook_pre(self.fc_in(x)))
        if self.act_topk:
            h = abs_topk(h, self.act_topk)
        return self.fc_out(self.hook_post(h))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1 = layer_norm(cfg)
        self.attn = Attention(cfg)
        self.ln2 = layer_norm(cfg)
        self.mlp = MLP(cfg)
        self.hook_resid_pre = HookPoint()  # [B, T, d_model]
        self.hook_attn_in = HookPoint()  # [B, T, d_model], the residual as attention reads it
        self.hook_attn_out = HookPoint()  # [B, T, d_model], what attention writes
        self.hook_resid_mid = HookPoint()  # [B, T, d_model]
        self.hook_mlp_in = HookPoint()  # [B, T, d_model], the residual as the MLP reads it
        self.hook_mlp_out = HookPoint()  # [B, T, d_model], what the MLP writes
        self.hook_resid_post = HookPoint()  # [B, T, d_model]
        self.ln1.hook_normalized = HookPoint()  # [B, T, d_model], the normalized residual attention reads
        self.ln2.hook_normalized = HookPoint()  # [B, T, d_model], the normalized residual the MLP reads

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, query_at: torch.Tensor | None = None) -> torch.Tensor:
        """With ``query_at`` ([B] positions), everything after the keys and values only there: [B, 1, d_model]."""
        x = self.hook_resid_pre(x)
        attended = self.hook_attn_out(self.attn(self.ln1.hook_normalized(self.ln1(self.hook_attn_in(x))), key_mask, query_at))
        if query_at is not None:
            x = x[torch.arange(len(x), device=x.device), query_at][:, None]
        x = self.hook_resid_mid(x + attended)
        x = x + self.hook_mlp_out(self.mlp(self.ln2.hook_normalized(self.ln2(self.hook_mlp_in(x)))))
        return self.hook_resid_post(x)


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int  # tokens of the tokenizer, special tokens included
    n_ctx: int = 320  # longest sequence, BOS included
    d_model: int = 128  # residual stream width
    n_layers: int = 3  # transformer blocks
    n_heads: int = 4  # attention heads per block; d_model must divide evenly
    d_mlp: int = 512  # MLP neurons per block
    act_topk: int = 0  # AbsTopK on MLP neurons: keep this many per position (0 = off)
    # independent sub-networks side by side: the residual channels, heads and neurons split into this many equal
    # groups, each LayerNorm normalizes each group alone, and every weight matrix between groups is 0 (zoo:routed)
    n_groups: int = 1
    # with 2 groups, the router: group 0's channels reach the unembedding at positions fewer than route_at tokens
    # after the last BOS (token bos_id), group 1's at the rest; 0: no router (the groups' logits add)
    route_at: int = 0
    bos_id: int = 0  # the native tokenizer's BOS: where the router counts positions from

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        for name in ("d_model", "n_heads", "d_mlp"):
            if getattr(self, name) % self.n_groups:
                raise ValueError(f"{name} ({getattr(self, name)}) must be divisible by n_groups ({self.n_groups})")
        if self.route_at and self.n_groups != 2:
            raise ValueError(f"the router (route_at = {self.route_at}) joins two sub-networks; n_groups is {self.n_groups}")

    def to_dict(self) -> dict:
        return asdict(self)


class Transformer(nn.Module):
    """Token + learned position embeddings, pre-LayerNorm blocks, final LayerNorm, untied unembedding."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_final = layer_norm(cfg)
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.hook_embed = HookPoint()  # [B, T, d_model]
        self.hook_pos_embed = HookPoint()  # [B, T, d_model]
        self.ln_final.hook_normalized = HookPoint()  # [B, T, d_model], what the unembedding reads (after the router)
        self.apply(self._init)
        self.enforce_groups()

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, last_only: bool = False) -> torch.Tensor:
        """ids [B, T] -> logits [B, T, vocab]; attention_mask [B, T] is 1 on real tokens (right padding). ``last_only``:
        the logits at each row's last real token alone, [B, 1, vocab], and the last block past its keys and values
        computed only there (its later hook points see [B, 1, ...]): what the circuit search and ablations read, for
        about a third less of the work of a three-block model."""
        B, T = ids.shape
        if T > self.cfg.n_ctx:
            raise ValueError(f"sequence of {T} tokens exceeds the model's context of {self.cfg.n_ctx}")
        key_mask = torch.ones_like(ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        last = key_mask.sum(dim=1) - 1 if last_only else None
        pos = torch.arange(T, device=ids.device)
        x = self.hook_embed(self.embed(ids)) + self.hook_pos_embed(self.pos_embed(pos)[None].expand(B, T, -1))
        for i, block in enumerate(self.blocks):
            x = block(x, key_mask, last if i == len(self.blocks) - 1 else None)
        if last is not None and not self.blocks:
            x = x[torch.arange(B, device=ids.device), last][:, None]
        x = self.ln_final(x)
        if self.cfg.route_at:
            routed = self._routed_channels(ids)
            x = x * (routed if last is None else routed[torch.arange(B, device=ids.device), last][:, None]).to(x.dtype)
        return self.unembed(self.ln_final.hook_normalized(x))

    def _routed_channels(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T, d_model] 1 on the channels of the group the router picks at each position, else 0."""
        pos = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        start = torch.where(ids == self.cfg.bos_id, pos, torch.zeros_like(pos)).cummax(dim=1).values  # the last BOS so far
        late = (pos - start >= self.cfg.route_at).long()  # [B, T]: 1 where group 1 predicts
        group = torch.arange(self.cfg.d_model, device=ids.device) // (self.cfg.d_model // self.cfg.n_groups)
        return group == late[..., None]

    def group_masks(self) -> list[tuple[nn.Parameter, torch.Tensor]]:
        """Each weight matrix between grouped channels, heads or neurons, with the mask of its entries inside a group
        (empty with one group); embeddings and the unembedding belong to every group's own columns and need none."""
        G = self.cfg.n_groups
        if G == 1:
            return []

        def block_diagonal(w: torch.Tensor) -> torch.Tensor:
            rows = torch.arange(w.shape[0], device=w.device) // (w.shape[0] // G)
            cols = torch.arange(w.shape[1], device=w.device) // (w.shape[1] // G)
            return rows[:, None] == cols[None, :]

        out = []
        for block in self.blocks:
            for linear in (block.attn.q, block.attn.k, block.attn.v, block.attn.o, block.mlp.fc_in, block.mlp.fc_out):
                out.append((linear.weight, block_diagonal(linear.weight)))
        return out

    @torch.no_grad()
    def enforce_groups(self) -> None:
        """Zero every weight between two groups (after initialization and after every training step)."""
        for w, mask in self.group_masks():
            w.mul_(mask.to(w.dtype))

    def hook_points(self) -> dict[str, HookPoint]:
        """Every hook point, by its TransformerLens name."""
        return {name: m for name, m in self.named_modules() if isinstance(m, HookPoint)}

    def weight_matrices(self) -> list[nn.Parameter]:
        """The matrices weight-sparse training sparsifies: every Linear and Embedding weight."""
        return [m.weight for m in self.modules() if isinstance(m, (nn.Linear, nn.Embedding))]
