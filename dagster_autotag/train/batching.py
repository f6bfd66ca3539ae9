"""Tokenised batches for the transformer kinds (bert, knn): texts sorted by length, so each batch
pads only to its own longest text (dynamic padding)."""

from collections.abc import Iterator

import numpy as np


def length_sorted_batches(
    tokenizer, texts: list[str], batch_size: int, max_len: int
) -> Iterator[tuple[np.ndarray, dict]]:
    """(row indices, tokenizer output as torch tensors) per batch; the indices put results back in order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer([texts[i] for i in idx], max_length=max_len, truncation=True, padding=True, return_tensors="pt")
        yield idx, enc
