"""The native models' character-level tokenizer: one token per character of the task alphabet."""

from __future__ import annotations

import string

BOS, PAD = "<bos>", "<pad>"
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))  # newline and printable ASCII


class CharTokenizer:
    """Token 0 is BOS (prepended to every text), 1 is padding, then one token per character."""

    def __init__(self, alphabet: str = ALPHABET) -> None:
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("alphabet has repeated characters")
        self.alphabet = alphabet
        self.vocab = [BOS, PAD, *alphabet]
        self.bos_id, self.pad_id = 0, 1
        self._ids = {ch: i + 2 for i, ch in enumerate(alphabet)}

    def __len__(self) -> int:
        return len(self.vocab)

    def token_id(self, ch: str) -> int:
        if ch not in self._ids:
            shown = ch if ch in string.printable and ch not in "\t\r\x0b\x0c" else ch.encode("unicode_escape").decode()
            raise ValueError(
                f"character {shown!r} is not in the native tokenizer's alphabet (newline and printable ASCII)"
            )
        return self._ids[ch]

    def encode(self, text: str, bos: bool = True) -> list[int]:
        return ([self.bos_id] if bos else []) + [self.token_id(ch) for ch in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids if i >= 2)
