"""Tokenisation, vocabulary and pretrained-vector loading for the TextCNN (pure Python/numpy, no torch).

Char level: every non-whitespace character is a token (lower-cased), encoded through a code-point lookup
table so a whole batch is one numpy gather. Word level: jieba.lcut per text (the slow part is jieba itself).
"""

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

Level = Literal["char", "word"]
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
# The Tencent/Chinese-Text-Classification-Pytorch vector files name their specials like this.
FILE_SPECIALS = {"<UNK>": UNK, "<PAD>": PAD}

_jieba_ready = False


def _jieba():
    """jieba, imported and initialised once, without its INFO chatter about building the prefix dict."""
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba_ready = True
    return jieba


def clean_chars(text: str, lowercase: bool = True) -> str:
    """The text with all whitespace removed (and lower-cased): its characters are the char tokens."""
    text = "".join(text.split())
    return text.lower() if lowercase else text


def tokenize(text: str, level: Level, lowercase: bool = True) -> list[str]:
    if level == "char":
        return list(clean_chars(text, lowercase))
    if level == "word":
        text = text.lower() if lowercase else text
        return [w for w in _jieba().lcut(text) if not w.isspace()]
    raise ValueError(f"unknown tokenizer level {level!r}; expected 'char' or 'word'")


class Vocab:
    """Token ↔ id mapping; id 0 is `<pad>`, id 1 is `<unk>`."""

    def __init__(self, tokens: Sequence[str], level: Level, lowercase: bool = True):
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError("a vocabulary must start with <pad>, <unk>")
        self.tokens = list(tokens)
        self.level: Level = level
        self.lowercase = lowercase
        self.stoi = {t: i for i, t in enumerate(self.tokens)}
        if len(self.stoi) != len(self.tokens):
            raise ValueError("duplicate tokens in vocabulary")
        self._table = self._codepoint_table() if level == "char" else None

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        level: Level = "char",
        min_freq: int = 1,
        max_size: int | None = None,
        lowercase: bool = True,
    ) -> "Vocab":
        """Most frequent tokens of `texts` (ties by token, for determinism); max_size counts the specials."""
        counts: Counter[str] = Counter()
        for text in texts:
            # Counter.update on a str counts its characters in C: much faster than a token list.
            counts.update(clean_chars(text, lowercase) if level == "char" else tokenize(text, level, lowercase))
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - 2)]
        return cls([PAD, UNK, *kept], level, lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def _codepoint_table(self) -> np.ndarray:
        """Dense code point → id table (UNK where absent); only single-character tokens can occur."""
        singles = [(ord(t), i) for i, t in enumerate(self.tokens) if len(t) == 1]
        size = max((cp for cp, _ in singles), default=0) + 1
        table = np.full(size, UNK_ID, dtype=np.int64)
        for cp, i in singles:
            table[cp] = i
        return table

    def encode_batch(self, texts: Sequence[str], max_len: int) -> np.ndarray:
        """(n, max_len) int64 ids, truncated to the first max_len tokens and right-padded with 0."""
        if self.level == "char":
            return self._encode_chars(texts, max_len)
        out = np.zeros((len(texts), max_len), dtype=np.int64)
        get = self.stoi.get
        for row, text in enumerate(texts):
            ids = [get(t, UNK_ID) for t in tokenize(text, "word", self.lowercase)[:max_len]]
            out[row, : len(ids)] = ids
        return out

    def _encode_chars(self, texts: Sequence[str], max_len: int) -> np.ndarray:
        n = len(texts)
        cleaned = [clean_chars(t, self.lowercase)[:max_len] for t in texts]
        lengths = np.fromiter(map(len, cleaned), dtype=np.int64, count=n)
        # One UTF-32 encode of the whole batch gives every code point; then a single table gather.
        cps = np.frombuffer("".join(cleaned).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        table = self._table
        assert table is not None
        ids = np.full(cps.shape, UNK_ID, dtype=np.int64)
        known = cps < len(table)
        ids[known] = table[cps[known]]
        out = np.zeros((n, max_len), dtype=np.int64)
        rows = np.repeat(np.arange(n), lengths)
        starts = np.cumsum(lengths) - lengths
        cols = np.arange(len(ids)) - np.repeat(starts, lengths)
        out[rows, cols] = ids
        return out

    def to_json(self) -> dict:
        return {"level": self.level, "lowercase": self.lowercase, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> "Vocab":
        return cls(data["tokens"], data["level"], data.get("lowercase", True))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def read_vector_tokens(vocab_txt_path: str | Path) -> list[str]:
    """One token per line, NOT stripped: a line holding a single space is the space token."""
    text = Path(vocab_txt_path).read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start an empty token
    return [FILE_SPECIALS.get(t, t) for t in lines]


def vector_coverage(vocab: Vocab, file_tokens: Iterable[str]) -> float:
    """Share of the vocabulary's real tokens (specials excluded) that have a pretrained vector."""
    available = set(file_tokens)
    real = vocab.tokens[2:]
    return sum(t in available for t in real) / len(real) if real else 0.0


def load_vectors(
    npy_path: str | Path,
    vocab_txt_path: str | Path,
    vocab: Vocab,
    seed: int = 0,
) -> np.ndarray:
    """(len(vocab), dim) float32 embedding matrix: row i = pretrained vector of vocab token i.

    Tokens the file lacks get small random vectors (std of the file's vectors, so they sit at the same
    scale); `<pad>` is all zeros; `<unk>` takes the file's `<UNK>` vector when it has one.
    """
    matrix = np.load(npy_path)
    file_tokens = read_vector_tokens(vocab_txt_path)
    if len(file_tokens) != matrix.shape[0]:
        raise ValueError(f"{vocab_txt_path} has {len(file_tokens)} tokens but {npy_path} has {matrix.shape[0]} rows")
    index = {t: i for i, t in enumerate(file_tokens)}
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, float(matrix.std()), size=(len(vocab), matrix.shape[1])).astype(np.float32)
    rows = np.array([index.get(t, -1) for t in vocab.tokens])
    found = rows >= 0
    out[found] = matrix[rows[found]]
    out[PAD_ID] = 0.0
    coverage = vector_coverage(vocab, file_tokens)
    logger.info("pretrained vectors cover %.1f%% of %d tokens (%s)", 100 * coverage, len(vocab) - 2, npy_path)
    return out
