"""Token ids of a whole split, computed once and cached; the batches cut from them; their way to the device.

The transformer kinds (bert, knn) used to tokenise every batch inside the training loop, at batch
32; on a GPU that, not the encoder, was the bottleneck (issue #15: 958 samples/s against 6,925 for
the encoder alone). Here a split is tokenised once with the fast tokenizer's batch API (Rust,
parallel over texts), stored as an (n, max_len) int32 matrix plus lengths, and cached as .npy files
keyed by the tokenizer, max_len and a content hash of the texts, so a second epoch, a second run
or the sub-label model on a subset of the same texts never tokenises again.

Pure: numpy and torch only (bench/gpu.py imports it without Dagster, polars or MLflow).
"""

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ENCODE_CHUNK = 8192  # texts per tokenizer call: bounds the Python lists the tokenizer returns


@dataclass
class Encoded:
    """Token ids padded with the tokenizer's pad id, and each row's real length."""

    ids: np.ndarray  # (n, max_len) int32
    lengths: np.ndarray  # (n,) int32

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) of `rows`, cut to their longest row (dynamic padding)."""
        lengths = self.lengths[rows]
        width = max(int(lengths.max()) if len(rows) else 1, 1)
        ids = torch.from_numpy(self.ids[rows, :width].astype(np.int64))
        mask = (torch.arange(width).unsqueeze(0) < torch.from_numpy(lengths).unsqueeze(1)).to(torch.int64)
        return ids, mask

    def subset(self, rows: np.ndarray) -> "Encoded":
        return Encoded(self.ids[rows], self.lengths[rows])


def encode(tokenizer, texts: list[str], max_len: int) -> Encoded:
    """Every text through the tokenizer's batch call (truncated to max_len, not padded)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = np.full((len(texts), max_len), pad, dtype=np.int32)
    lengths = np.zeros(len(texts), dtype=np.int32)
    for start in range(0, len(texts), ENCODE_CHUNK):
        # copies: handing a str to the Rust tokenizer makes CPython cache its UTF-8 form inside the
        # object (~3 bytes per Chinese character) for as long as the caller keeps the text: a day of
        # texts would grow by that much. A copy takes the cache with it when the chunk is done.
        chunk = [
            t.encode("utf-8").decode("utf-8") if isinstance(t, str) else "" for t in texts[start : start + ENCODE_CHUNK]
        ]
        rows = tokenizer(chunk, max_length=max_len, truncation=True, padding=False, return_attention_mask=False)
        for i, row in enumerate(rows["input_ids"], start):
            ids[i, : len(row)] = row
            lengths[i] = len(row)
    return Encoded(ids, lengths)


def content_hash(texts: Iterable[str]) -> str:
    """sha256 of the texts in order (a split's identity for the cache)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update((text if isinstance(text, str) else "").encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """What the token ids depend on: the fast tokenizer's full serialisation (vocabulary, normaliser,
    pre-tokeniser), else the vocabulary; computed once per tokenizer object."""
    cached = getattr(tokenizer, "_autotag_fingerprint", None)
    if cached:
        return cached
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    fingerprint = hashlib.sha256(f"{type(tokenizer).__name__}\n{text}".encode()).hexdigest()
    try:
        tokenizer._autotag_fingerprint = fingerprint
    except AttributeError:  # a tokenizer class with __slots__: recompute next time
        pass
    return fingerprint


def cache_key(tokenizer, texts: list[str], max_len: int) -> str:
    return hashlib.sha256(f"{tokenizer_fingerprint(tokenizer)}|{max_len}|{content_hash(texts)}".encode()).hexdigest()


def cached_encode(tokenizer, texts: list[str], max_len: int, cache_dir: Path | None) -> Encoded:
    """`encode`, read from / written to `cache_dir/<key>.{ids,lengths}.npy` when a folder is given.
    Written atomically (temporary file, then rename), so concurrent ranks or runs never read half a file."""
    if cache_dir is None:
        return encode(tokenizer, texts, max_len)
    key = cache_key(tokenizer, texts, max_len)
    ids_path, lengths_path = cache_dir / f"{key}.ids.npy", cache_dir / f"{key}.lengths.npy"
    if ids_path.exists() and lengths_path.exists():
        return Encoded(np.load(ids_path, mmap_mode="r"), np.load(lengths_path))
    encoded = encode(tokenizer, texts, max_len)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for path, array in ((ids_path, encoded.ids), (lengths_path, encoded.lengths)):
        with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".tmp", delete=False) as handle:
            np.save(handle, array)
        os.replace(handle.name, path)
    return encoded


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, chunk_batches: int = 50
) -> list[np.ndarray]:
    """Training batches: rows shuffled, then sorted by length within chunks of `chunk_batches`
    batches and cut, then the batches shuffled. Each batch holds rows of similar length (little
    padding) while which rows meet in a batch, and the batch order, stay random."""
    order = rng.permutation(len(lengths))
    batches = []
    chunk = batch_size * chunk_batches
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        batches += [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Inference batches: all rows sorted by length (results go back by row index)."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def prefetched(make: Callable, items: Iterable, depth: int = 2) -> Iterator:
    """make(item) for each item, computed up to `depth` items ahead in a background thread (token
    ids collated and pinned, or texts tokenised, while the model works on the previous batch; the
    tokenizer and torch release the GIL)."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(make, item) for _, item in zip(range(depth), items, strict=False)]
        while pending:
            future = pending.pop(0)
            for item in items:
                pending.append(pool.submit(make, item))
                break
            yield future.result()


def host_batch(tensors: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Pinned host memory on CUDA, so that `to_device`'s copy can overlap the computation."""
    return tuple(t.pin_memory() for t in tensors) if device.type == "cuda" else tensors


def to_device(tensors: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(device, non_blocking=device.type == "cuda") for t in tensors)
