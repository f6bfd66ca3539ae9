"""Text augmentation for rare labels (issue #14 §5): EDA-style operations on Chinese characters.
Measured by bench/rare.py and NOT in the pipeline: every variant lowered the thinned aspects' F1
(BENCHMARKS.md), so it lives here with its benchmark.

- synonym replacement: a character becomes one of its nearest neighbours in a pretrained character
  vector table (cosine; the Tencent char vectors of TextCNNConfig.vectors_npy / vectors_vocab);
- random deletion: each character dropped with probability p;
- random swap: two random characters trade places, n times.

Characters, not words: no tokenizer, and the vector table is per character. One operation per
augmented copy, chosen at random with a seed per copy, so a re-run gives the same texts.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

OPERATIONS = ("synonym", "delete", "swap")


@dataclass
class CharNeighbours:
    """For each character of a vector table, its `k` nearest other characters (cosine)."""

    table: dict[str, list[str]]

    @classmethod
    def from_vectors(cls, vectors_npy: str | Path, vocab_txt: str | Path, k: int = 5) -> "CharNeighbours":
        vectors = np.load(vectors_npy).astype(np.float32)
        tokens = Path(vocab_txt).read_text(encoding="utf-8").split("\n")[: len(vectors)]
        keep = [i for i, t in enumerate(tokens) if len(t) == 1 and not t.isspace() and _is_cjk(t)]
        unit = vectors[keep] / np.maximum(np.linalg.norm(vectors[keep], axis=1, keepdims=True), 1e-12)
        table = {}
        for start in range(0, len(keep), 1024):  # blocks: the full similarity matrix is ~90 MB
            sims = unit[start : start + 1024] @ unit.T
            for row, i in enumerate(range(start, min(start + 1024, len(keep)))):
                sims[row, i] = -np.inf  # not itself
            nearest = np.argsort(-sims, axis=1)[:, :k]
            for row, near in enumerate(nearest):
                table[tokens[keep[start + row]]] = [tokens[keep[j]] for j in near]
        return cls(table)


def _is_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


@dataclass(frozen=True)
class AugmentConfig:
    synonym_share: float = 0.1  # of the characters that have neighbours
    delete_p: float = 0.1
    swaps: int = 2
    operations: tuple[str, ...] = OPERATIONS

    def __post_init__(self) -> None:
        unknown = set(self.operations) - set(OPERATIONS)
        if unknown or not self.operations:
            raise ValueError(f"operations must be a non-empty subset of {OPERATIONS}, got {self.operations}")
        if not (0 <= self.synonym_share <= 1 and 0 <= self.delete_p < 1 and self.swaps >= 0):
            raise ValueError("synonym_share in [0, 1], delete_p in [0, 1), swaps ≥ 0")


def augment(text: str, rng: np.random.Generator, neighbours: CharNeighbours, config: AugmentConfig) -> str:
    """One augmented version of `text` by one operation of config.operations."""
    chars = list(text)
    if len(chars) < 2:
        return text
    operation = config.operations[int(rng.integers(len(config.operations)))]
    if operation == "synonym":
        candidates = [i for i, c in enumerate(chars) if c in neighbours.table]
        n = max(1, int(round(config.synonym_share * len(candidates)))) if candidates else 0
        for i in rng.choice(candidates, size=min(n, len(candidates)), replace=False) if n else []:
            options = neighbours.table[chars[i]]
            chars[i] = options[int(rng.integers(len(options)))]
    elif operation == "delete":
        kept = [c for c in chars if rng.random() >= config.delete_p]
        chars = kept or [chars[int(rng.integers(len(chars)))]]
    else:
        for _ in range(config.swaps):
            i, j = rng.integers(len(chars), size=2)
            chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


def augment_copies(
    texts: list[str], copy: np.ndarray, neighbours: CharNeighbours, config: AugmentConfig, seed: int = 0
) -> list[str]:
    """`texts` with every oversampled copy (copy > 0) augmented; originals (copy == 0) unchanged.
    Each copy's seed comes from its row and copy number: the same input gives the same texts."""
    out = list(texts)
    for i in np.flatnonzero(np.asarray(copy) > 0):
        rng = np.random.default_rng([seed, int(i), int(copy[i])])
        out[i] = augment(texts[i], rng, neighbours, config)
    return out
