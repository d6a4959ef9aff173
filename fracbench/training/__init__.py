"""Training the zoo (kept apart from the adapters that read models): the corpus and the AdamW loop, weight-sparse
training, and rebuilding a zoo checkpoint from its recipe (`fracbench zoo train NAME`)."""

from .train import build_corpus, train
from .zoo import train_and_save

__all__ = ["build_corpus", "train", "train_and_save"]
