"""A tiny HuggingFace GPT-2 built offline, with a character-level tokenizer (byte-level BPE with no merges), so
lm-eval's joint encoding of prompt and completion splits exactly where fracbench's does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_TRUST_REMOTE_CODE": "0"}


@pytest.fixture(scope="session", autouse=True)
def offline() -> None:
    os.environ.update(OFFLINE)  # nothing here may reach the hub


def save_tiny_gpt2(directory: Path, seed: int = 0, init_range: float = 0.5) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(["x"], trainers.BpeTrainer(vocab_size=len(alphabet) + 1, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=alphabet, show_progress=False))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                     pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=512, vocab_size=len(hf_tok), initializer_range=init_range,
                        bos_token_id=hf_tok.bos_token_id, eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(directory)
    hf_tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))
