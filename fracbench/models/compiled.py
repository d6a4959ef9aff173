"""zoo:compiled: a native transformer whose weights are set by hand, so that quote_close and bracket_depth run on
circuits known node by node (docs/zoo.md, "compiled"). The known answer of the circuit search: it should recover
:data:`TRUE_CIRCUITS`.

The zoo's architecture (3 blocks, d_model 96, 4 heads of 24, 384 neurons); only block 0 and the unembedding do
anything. The residual stream holds named features, each in a channel ``f`` with a mirror ``f + 48`` holding minus
its value, so every residual vector has mean 0 and LayerNorm only scales it. Token and position embeddings each also
write a norm pair that makes their length constant, so block 0's first LayerNorm divides every position by the same
number (``LN0_SCALE``): the attention scores below are exact.

* quote_close: head 0 attends to the most recent quote character (a key of "is a quote" plus recency, a constant
  query), reads +1 for ``'`` and -1 for ``"`` and writes it to feature Q; the unembedding reads Q into ``'`` against ``"``.
* bracket_depth: head 1 attends uniformly (zero query and key), reads +1 for ``[`` and -1 for ``]`` and writes
  depth / (t + 1) to feature D; one MLP neuron fires on D - P > 0, P = 0.5 / (t + 1) a positional feature, so on
  depth >= 1, and writes feature E; the unembedding reads E - 1.5 into ``]`` against a newline.
"""

from __future__ import annotations

import math

import torch

from .tokenizer import CharTokenizer
from .transformer import Transformer, TransformerConfig

CONFIG = {"d_model": 96, "n_layers": 3, "n_heads": 4, "d_mlp": 384}
MIRROR = 48  # feature f's mirror channel holds -f: every residual vector has mean 0
# residual features (channels)
BIAS, SINGLE, DOUBLE, OPEN, CLOSE, TOKEN_NORM, RECENCY, HALF_INVERSE, POSITION_NORM, QUOTE, DEPTH, OPEN_LEFT = range(12)
M = 10.0  # the constant feature BIAS: the query's source, and most of every vector's length
TOKEN_LENGTH, POSITION_LENGTH = 1.5, 1.2  # each token's features and norm pair have length sqrt(2) x this; positions' likewise
RECENCY_SPAN = 320.0  # recency = t / 320 (the zoo's context)
QUOTE_MARGIN = 12.0  # attention score between consecutive quote positions (and more between a quote and anything else)
DEPTH_GAIN = 3000.0  # the depth neuron's input gain: depth >= 1 puts at least 3 logits into it at every position up to 320
DEPTH_THRESHOLD = 1.5  # E above this: brackets still open
READOUT = 10.0  # unembedding gain

# What the behaviour needs, node by node (nodes whose value varies with the input and reaches the answer); constant
# nodes (BIAS, head 0's query) are left out: mean ablation cannot change them. In the model's own indices. The
# mirrors of the features written in block 0 (MIRRORS) are LayerNorm's partners of those features (its mean and length
# read them), so a circuit may keep them: neither required nor counted against a found circuit.
TRUE_CIRCUITS: dict[str, dict[str, list[int]]] = {
    "quote_close": {
        "blocks.0.ln1.hook_normalized": [SINGLE, DOUBLE, RECENCY],
        "blocks.0.attn.hook_k": [0],
        "blocks.0.attn.hook_v": [0],
        "blocks.0.hook_attn_out": [QUOTE],
    },
    "bracket_depth": {
        "blocks.0.ln1.hook_normalized": [OPEN, CLOSE],
        "blocks.0.attn.hook_v": [24],
        "blocks.0.hook_attn_out": [DEPTH],
        "blocks.0.ln2.hook_normalized": [HALF_INVERSE, DEPTH],
        "blocks.0.mlp.hook_post": [0],
        "blocks.0.hook_mlp_out": [OPEN_LEFT],
    },
}


MIRRORS: dict[str, dict[str, list[int]]] = {
    "quote_close": {"blocks.0.hook_attn_out": [QUOTE + MIRROR]},
    "bracket_depth": {"blocks.0.hook_attn_out": [DEPTH + MIRROR], "blocks.0.hook_mlp_out": [OPEN_LEFT + MIRROR]},
}


def _write(vector: torch.Tensor, feature: int, value: float) -> None:
    vector[feature] = value
    vector[feature + MIRROR] = -value


def embeddings(tokenizer: CharTokenizer, n_ctx: int, d_model: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token [vocab, d] and position [n_ctx, d] embeddings: features and norm pairs, every row of one length."""
    tokens = torch.zeros(len(tokenizer), d_model, dtype=torch.float64)
    features = {"'": SINGLE, '"': DOUBLE, "[": OPEN, "]": CLOSE}
    for token in range(len(tokenizer)):
        ch = tokenizer.vocab[token]
        used = 1.0 if ch in features else 0.0
        if used:
            _write(tokens[token], features[ch], 1.0)
        _write(tokens[token], TOKEN_NORM, math.sqrt(TOKEN_LENGTH**2 - used))
    positions = torch.zeros(n_ctx, d_model, dtype=torch.float64)
    for t in range(n_ctx):
        recency, half_inverse = t / RECENCY_SPAN, 0.5 / (t + 1)
        _write(positions[t], BIAS, M)
        _write(positions[t], RECENCY, recency)
        _write(positions[t], HALF_INVERSE, half_inverse)
        _write(positions[t], POSITION_NORM, math.sqrt(POSITION_LENGTH**2 - recency**2 - half_inverse**2))
    return tokens, positions


def ln0_scale(d_model: int) -> float:
    """What block 0's first LayerNorm multiplies every (mean-0, constant-length) input by: sqrt(d) / length."""
    length = math.sqrt(2 * (TOKEN_LENGTH**2 + M**2 + POSITION_LENGTH**2))
    return math.sqrt(d_model) / length


@torch.no_grad()
def build(tokenizer: CharTokenizer | None = None) -> Transformer:
    """The hand-set model (deterministic: no random number is drawn into it)."""
    tokenizer = tokenizer or CharTokenizer()
    cfg = TransformerConfig(vocab_size=len(tokenizer), **CONFIG)
    model = Transformer(cfg)
    for p in model.parameters():
        p.zero_()
    for norm in [model.ln_final, *(m for block in model.blocks for m in (block.ln1, block.ln2))]:
        norm.weight.fill_(1.0)
    tokens, positions = embeddings(tokenizer, cfg.n_ctx, cfg.d_model)
    model.embed.weight.copy_(tokens)
    model.pos_embed.weight.copy_(positions)
    s, d_head = ln0_scale(cfg.d_model), cfg.d_model // cfg.n_heads
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    # head 0 (channels 0..23): the most recent quote. score = q.k / sqrt(d_head) = c (2 is_quote + recency) with c the
    # margin between consecutive positions x the span
    scale = QUOTE_MARGIN * RECENCY_SPAN * math.sqrt(d_head)  # q0 k0 for recency 1
    attn.q.weight[0, BIAS] = 1.0  # q0 = s M
    attn.k.weight[0, SINGLE] = attn.k.weight[0, DOUBLE] = 2 * scale / (s * M * s)
    attn.k.weight[0, RECENCY] = scale / (s * M * s)
    attn.v.weight[0, SINGLE], attn.v.weight[0, DOUBLE] = 1 / s, -1 / s
    attn.o.weight[QUOTE, 0], attn.o.weight[QUOTE + MIRROR, 0] = 1.0, -1.0
    # head 1 (channels 24..47): a uniform average of +1 per '[' and -1 per ']': depth / (t + 1)
    attn.v.weight[d_head, OPEN], attn.v.weight[d_head, CLOSE] = 1 / s, -1 / s
    attn.o.weight[DEPTH, d_head], attn.o.weight[DEPTH + MIRROR, d_head] = 1.0, -1.0
    # neuron 0: GELU(gain x (D - P)) after block 0's second LayerNorm (which scales both alike), written to E
    mlp.fc_in.weight[0, DEPTH], mlp.fc_in.weight[0, HALF_INVERSE] = DEPTH_GAIN, -DEPTH_GAIN
    mlp.fc_out.weight[OPEN_LEFT, 0], mlp.fc_out.weight[OPEN_LEFT + MIRROR, 0] = 1.0, -1.0
    # the unembedding: ' against " by Q; ']' against newline by E - 1.5 (the threshold read from BIAS, so that the final
    # LayerNorm scales it with E)
    single, double = tokenizer.token_id("'"), tokenizer.token_id('"')
    close, newline = tokenizer.token_id("]"), tokenizer.token_id("\n")
    model.unembed.weight[single, QUOTE], model.unembed.weight[double, QUOTE] = READOUT, -READOUT
    model.unembed.weight[close, OPEN_LEFT] = READOUT
    model.unembed.weight[close, BIAS] = -READOUT * DEPTH_THRESHOLD / M
    del newline  # its logit stays 0: the comparison is ']' against it
    return model.eval()
