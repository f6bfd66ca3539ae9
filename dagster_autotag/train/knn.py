"""kNN voting over sentence embeddings: the seed's idea for rare labels, as a model kind.

A frozen encoder (any local transformers directory; mean pooling over tokens, L2-normalised) embeds
the training texts once; a text's probability for label j is the similarity-weighted share of its k
nearest training texts that carry j (weights exp(cosine / temperature)). Nothing is trained, so a
label with a handful of examples gets a usable score as soon as those examples exist.

Search is exact: one matrix product per block of queries against every stored vector (BLAS). At
this project's sizes (≤ a few 100k training texts × 384 dims) that takes seconds and needs no index
to build, tune or keep in sync; an approximate index (faiss, usearch) pays off only well beyond.
"""

import json
import os
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from dagster_autotag.train.batching import length_sorted_batches
from dagster_autotag.train.configs import KNNConfig

CONFIG_FILE = "knn.json"
QUERY_BLOCK = 512  # queries per matrix product: 512 × 100k stored vectors is 200 MB of float32 scores


class Encoder:
    """Mean-pooled, L2-normalised sentence embeddings from a local transformers directory."""

    def __init__(self, model_dir: str | Path, config: KNNConfig):
        from transformers import AutoModel, AutoTokenizer

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        torch.set_num_threads(config.num_threads)
        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = [self.config.text_prefix + t for t in texts]
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        batches = length_sorted_batches(self.tokenizer, texts, self.config.batch_size, self.config.max_len)
        with torch.inference_mode():
            for idx, enc in batches:
                hidden = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().numpy()
        return out

    def save(self, path: Path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        self.saved_at = path


@lru_cache(maxsize=4)
def _shared_encoder(model_dir: str, prefix: str, max_len: int, batch_size: int, threads: int) -> Encoder:
    config = KNNConfig(model_dir, text_prefix=prefix, max_len=max_len, batch_size=batch_size, num_threads=threads)
    return Encoder(model_dir, config)


def shared_encoder(model_dir: str | Path, config: KNNConfig) -> Encoder:
    """One encoder per directory and settings: a scheme's gate and sub-label models use the same one
    (loaded once, saved once)."""
    key = (str(Path(model_dir).resolve()), config.text_prefix, config.max_len, config.batch_size, config.num_threads)
    return _shared_encoder(*key)


class KNNModel:
    def __init__(self, config: KNNConfig, encoder: Encoder | None = None):
        self.config = config
        self.encoder = encoder
        self.vectors: np.ndarray | None = None  # (n, dim) float32, unit rows
        self.targets: np.ndarray | None = None  # (n, L) bool
        self.exclusive = False  # the votes normalised over the labels (one label per text)

    def fit(self, texts: list[str], y: np.ndarray, exclusive: bool = False) -> "KNNModel":
        y = np.asarray(y)
        y = y.reshape(-1, 1) if y.ndim == 1 else y
        if len(texts) != y.shape[0]:
            raise ValueError(f"{len(texts)} texts but {y.shape[0]} target rows")
        self.encoder = self.encoder or shared_encoder(self.config.model_dir, self.config)
        self.vectors = self.encoder.encode(list(texts))
        self.targets = y > 0
        self.exclusive = exclusive
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        queries = self.encoder.encode(list(texts))
        votes = vote(queries, self.vectors, self.targets, self.config.k, self.config.temperature)
        if self.exclusive:  # the labels' shares of the neighbours' votes: a distribution, like a softmax
            votes /= np.maximum(votes.sum(axis=1, keepdims=True), 1e-12)
        return votes

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        saved = getattr(self.encoder, "saved_at", None)
        if saved is not None and saved.is_dir() and saved.parent.parent == path.parent:
            encoder = os.path.relpath(saved, path)  # the scheme's other model saved it beside us
        else:
            self.encoder.save(path / "encoder")
            encoder = "encoder"
        # float32: half precision flips near-ties among neighbours, and the loaded model must be the evaluated one
        np.save(path / "vectors.npy", self.vectors)
        np.save(path / "targets.npy", np.packbits(self.targets, axis=0))
        meta = {
            "config": asdict(self.config),
            "encoder": encoder,
            "n": int(self.targets.shape[0]),
            "labels": int(self.targets.shape[1]),
            "exclusive": self.exclusive,
        }
        (path / CONFIG_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "KNNModel":
        meta = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        encoder_dir = (path / meta.get("encoder", "encoder")).resolve()
        config = KNNConfig(**{**meta["config"], "model_dir": str(encoder_dir)})
        model = cls(config, shared_encoder(encoder_dir, config))
        model.vectors = np.load(path / "vectors.npy")
        model.targets = np.unpackbits(np.load(path / "targets.npy"), axis=0, count=meta["n"]).astype(bool)
        model.exclusive = meta.get("exclusive", False)
        return model


def vote(queries: np.ndarray, vectors: np.ndarray, targets: np.ndarray, k: int, temperature: float) -> np.ndarray:
    """Per label: the exp(cosine / temperature)-weighted share of the k nearest stored rows carrying it."""
    k = min(k, len(vectors))
    out = np.zeros((len(queries), targets.shape[1]), dtype=np.float32)
    for start in range(0, len(queries), QUERY_BLOCK):
        sims = queries[start : start + QUERY_BLOCK] @ vectors.T
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sims, nearest, axis=1)
        weights = np.exp((top - top.max(axis=1, keepdims=True)) / temperature)  # shifted: no overflow
        votes = np.einsum("qk,qkl->ql", weights, targets[nearest].astype(np.float32))
        out[start : start + QUERY_BLOCK] = votes / weights.sum(axis=1, keepdims=True)
    return np.clip(out, 0.0, 1.0, out=out)  # a share: rounding must not push it past 1
