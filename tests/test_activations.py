"""Capture keeps exactly the asked-for sites and tokens; latent datasets line labels up with them."""

from __future__ import annotations

import pytest
import torch

from fracbench.activations import capture, latent_dataset
from fracbench.models.native import NativeAdapter
from fracbench.tasks import get_task

SITE = "blocks.0.hook_resid_post"


def test_capture_at_characters_matches_the_full_forward(tiny_adapter: NativeAdapter) -> None:
    texts = ["x = [1, 2]", "y = 'ab"]
    got = capture(tiny_adapter, texts, [SITE, "blocks.0.attn.hook_z"], [[0, 4], [6]], batch_size=1)
    full = tiny_adapter.forward(tiny_adapter.encode(texts), capture=[SITE]).activations[SITE]
    assert got.text_index.tolist() == [0, 0, 1] and got.token_index.tolist() == [1, 5, 7]
    assert torch.allclose(got.activations[SITE], full[[0, 0, 1], [1, 5, 7]], atol=1e-6)
    assert got.activations["blocks.0.attn.hook_z"].shape == (3, 2, 16)
    assert got.spans.tolist() == [[0, 1], [4, 5], [6, 7]]


def test_capture_defaults_to_the_last_token_and_honours_dtype(tiny_adapter: NativeAdapter) -> None:
    got = capture(tiny_adapter, ["ab", "abcd"], [SITE], dtype=torch.float16)
    assert got.token_index.tolist() == [2, 4]
    assert got.activations[SITE].dtype == torch.float16


def test_capture_refuses_mismatched_positions_and_unknown_sites(tiny_adapter: NativeAdapter) -> None:
    with pytest.raises(ValueError, match="one list per text"):
        capture(tiny_adapter, ["ab", "cd"], [SITE], [[0]])
    with pytest.raises(KeyError, match="did you mean"):
        capture(tiny_adapter, ["ab"], ["blocks.0.hook_resid_pots"])


def test_latent_dataset_labels_every_labelled_character(tiny_adapter: NativeAdapter) -> None:
    examples = get_task("quote_close").examples("test", 8)
    data = latent_dataset(tiny_adapter, examples, "inside_string", [SITE], batch_size=3)
    assert data.activations[SITE].shape == (sum(len(ex.prompt) for ex in examples), 32)
    expected = [label for ex in examples for _, label in ex.latents["inside_string"]]
    assert data.labels.tolist() == expected
    assert data.token_ids.tolist() == [tiny_adapter.tokenizer.token_id(ch) for ex in examples for ch in ex.prompt]
    assert data.text_index.tolist() == [i for i, ex in enumerate(examples) for _ in ex.prompt]
    with pytest.raises(KeyError, match="carry no latent 'depth'"):
        latent_dataset(tiny_adapter, examples, "depth", [SITE])


def test_capture_rows_are_in_text_order_whatever_the_batching(tiny_adapter: NativeAdapter) -> None:
    texts = ["a longer text here", "ab", "x = [1]", "q"]  # lengths out of order: batches run sorted by length
    positions = [[0, 3, 9], [1], [4, 5], [0]]
    one = capture(tiny_adapter, texts, [SITE], positions, batch_size=1)
    two = capture(tiny_adapter, texts, [SITE], positions, batch_size=3)
    assert one.text_index.tolist() == two.text_index.tolist() == [0, 0, 0, 1, 2, 2, 3]
    assert one.token_index.tolist() == two.token_index.tolist()
    assert torch.allclose(one.activations[SITE], two.activations[SITE], atol=1e-5)
