"""Multi-label TextCNN (Kim 2014) in plain PyTorch: model, training with early stopping, batched
inference and save/load; its options are TextCNNConfig (train/configs.py). No Dagster or MLflow here;
callers log through `on_epoch`.

Padding never changes a prediction: each convolution pads the right edge itself and its outputs at
windows made only of padding are zeroed (after ReLU, so max pooling ignores them). Batches can therefore
be cut to their longest text, which is what makes inference on short texts cheap.

Optional bigram channel (`ngram_buckets` > 0, FastText's trick): each position's input is its token's
embedding plus the embedding of the (token, next token) pair, hashed from the two ids into a fixed number
of buckets. The pairs are computed from the ids inside the model, so encoding, saving and serving are the
same with or without it.

Inference skips the convolutions: embedding then convolution is linear per token, so each token's
contribution to every kernel tap is precomputed once (`fused_tables`) and a window's pre-activation is an
`embedding_bag` sum of k table rows (2k with the bigram channel). On 2 CPU cores that is several times
faster than conv1d.
"""

import copy
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dagster_autotag.train.configs import TextCNNConfig
from dagster_autotag.train.tokens import host_batch, to_device
from dagster_autotag.train.vocab import PAD_ID, Vocab, load_vectors, read_vector_tokens, vector_coverage

logger = logging.getLogger(__name__)

CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE = "textcnn_config.json", "vocab.json", "model.pt"
FUSED_MAX_BYTES = 512 * 2**20  # above this (huge word vocabularies, big bigram tables) inference uses conv1d


class TextCNN(nn.Module):
    """Embedding → parallel 1-D convolutions + ReLU → (k-)max pooling over time → dropout → linear logits."""

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        embed_dim: int = 128,
        kernel_sizes: Sequence[int] = (2, 3, 4),
        num_filters: int = 128,
        top_k: int = 1,
        dropout: float = 0.5,
        embedding_dropout: float = 0.0,
        vectors: np.ndarray | None = None,
        freeze_embeddings: bool = False,
        ngram_buckets: int = 0,
    ):
        super().__init__()
        self.kernel_sizes = tuple(kernel_sizes)
        self.top_k = top_k
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        if vectors is not None:
            if vectors.shape != (vocab_size, embed_dim):
                raise ValueError(f"vectors shape {vectors.shape} != ({vocab_size}, {embed_dim})")
            with torch.no_grad():
                self.embedding.weight.copy_(torch.from_numpy(vectors))
                self.embedding.weight[PAD_ID].zero_()  # padding must embed to 0 (see module doc)
        self.embedding.weight.requires_grad_(not freeze_embeddings)
        # Bucket 0 is the pair that ends in padding: it embeds to 0 like <pad>. Starting at 0 everywhere,
        # the model begins as the plain token model (random N(0, 1) pairs would drown pretrained vectors).
        # Sparse gradients: a batch touches a few thousand of the buckets, and a dense Adam update of the
        # whole table cost ~25x more than the rest of the step (200k buckets x 200 dims).
        self.ngram_embedding = None
        if ngram_buckets:
            self.ngram_embedding = nn.Embedding(ngram_buckets, embed_dim, padding_idx=0, sparse=True)
            nn.init.zeros_(self.ngram_embedding.weight)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.embedding_dropout = nn.Dropout1d(embedding_dropout)  # on (n, E, T): zeroes whole channels
        self.head = nn.Linear(len(self.kernel_sizes) * num_filters * top_k, num_labels)

    def bigram_ids(self, token_ids: torch.Tensor) -> torch.Tensor:
        """(n, T) bucket of each (token, next token) pair; 0 where the pair reaches into padding."""
        assert self.ngram_embedding is not None
        buckets = self.ngram_embedding.num_embeddings
        ids = token_ids.to(torch.int64)
        following = F.pad(ids[:, 1:], (0, 1), value=PAD_ID)
        hashed = (ids * 1_000_003 + following) % (buckets - 1) + 1  # ids < 2**31: no int64 overflow
        return torch.where((ids != PAD_ID) & (following != PAD_ID), hashed, 0)

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """(n, T, E) inputs of the convolutions."""
        x = self.embedding(token_ids)
        if self.ngram_embedding is not None:
            x = x + self.ngram_embedding(self.bigram_ids(token_ids))
        return x

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids (n, T) right-padded with 0 → logits (n, num_labels); needs T ≥ top_k."""
        lengths = (token_ids != PAD_ID).sum(dim=1, keepdim=True)
        # Windows starting at or after a text's end hold only padding: zero them.
        real = (torch.arange(token_ids.shape[1], device=token_ids.device) < lengths).unsqueeze(1)
        x = self.embedding_dropout(self.embed(token_ids).transpose(1, 2))  # (n, E, T)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            h = F.relu(conv(F.pad(x, (0, k - 1)))) * real  # (n, F, T)
            if self.top_k == 1:
                pooled.append(h.amax(dim=2))
            else:
                # Values sorted descending: unlike position order, this is unaffected by ties with padding.
                pooled.append(h.topk(self.top_k, dim=2).values.flatten(1))
        return self.head(self.dropout(torch.cat(pooled, dim=1)))

    def fused_tables(self) -> list[torch.Tensor]:
        """Per kernel k a (k*V [+ k*B], F) table: row j*V + v = tap j of the conv applied to token v's
        embedding; with the bigram channel, row k*V + j*B + b = tap j applied to bucket b's embedding.

        The bias is folded into tap 0, and tap 0 of `<pad>` is -inf so that windows starting in the
        padding never win the pooling (they would be zeroed in `forward`); other `<pad>` rows and the
        rows of bucket 0 are 0.
        """
        emb = self.embedding.weight.detach()
        tables = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            w = conv.weight.detach()  # (F, E, k)
            taps = [emb @ w[:, :, j].T for j in range(k)]
            taps[0] = taps[0] + conv.bias.detach()
            for j, tap in enumerate(taps):
                tap[PAD_ID] = float("-inf") if j == 0 else 0.0
            if self.ngram_embedding is not None:
                pair_emb = self.ngram_embedding.weight.detach()
                taps += [pair_emb @ w[:, :, j].T for j in range(k)]  # row 0 is 0: padding_idx embeds to 0
            tables.append(torch.cat(taps).contiguous())
        return tables

    def forward_fused(self, token_ids: torch.Tensor, tables: Sequence[torch.Tensor]) -> torch.Tensor:
        """Eval-mode `forward` through `fused_tables` (equal up to float rounding)."""
        n, width = token_ids.shape
        vocab_size = self.embedding.num_embeddings
        pad = max(self.kernel_sizes) - 1
        # int32 indices take fbgemm's fast embedding_bag kernel (about 5x faster than int64 here).
        ids = F.pad(token_ids.to(torch.int32), (0, pad), value=PAD_ID)
        pairs = None
        if self.ngram_embedding is not None:
            pairs = F.pad(self.bigram_ids(token_ids).to(torch.int32), (0, pad), value=0)
        pooled = []
        for k, table in zip(self.kernel_sizes, tables):
            taps = torch.arange(k, dtype=torch.int32) * vocab_size
            windows = ids.unfold(1, k, 1)[:, :width] + taps
            if pairs is not None:
                pair_taps = k * vocab_size + torch.arange(k, dtype=torch.int32) * self.ngram_embedding.num_embeddings
                windows = torch.cat([windows, pairs.unfold(1, k, 1)[:, :width] + pair_taps], dim=2)
            h = F.embedding_bag(windows.reshape(n * width, -1), table, mode="sum").view(n, width, -1)  # pre-ReLU
            if self.top_k == 1:
                pooled.append(h.amax(dim=1))
            else:
                pooled.append(h.topk(self.top_k, dim=1).values.transpose(1, 2).flatten(1))
        # ReLU is monotone, so pooling first and ReLU after is the same and touches far less memory.
        return self.head(torch.cat(pooled, dim=1).clamp_min(0.0))

    def fused_bytes(self) -> int:
        rows = self.embedding.num_embeddings + (self.ngram_embedding.num_embeddings if self.ngram_embedding else 0)
        return 4 * rows * sum(self.kernel_sizes) * self.convs[0].out_channels


def pos_weights(y: np.ndarray, cap: float) -> np.ndarray:
    """neg/pos per label clipped to [1, cap]; labels without positives get 1."""
    pos = y.sum(axis=0)
    neg = y.shape[0] - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(pos > 0, neg / np.maximum(pos, 1e-12), 1.0)
    return np.clip(ratio, 1.0, cap).astype(np.float32)


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t, p = y_true.astype(bool), y_pred.astype(bool)
    tp = float((t & p).sum())
    denom = 2 * tp + float((~t & p).sum()) + float((t & ~p).sum())
    return 2 * tp / denom if denom else 0.0


def _trimmed(ids: np.ndarray, min_len: int) -> torch.Tensor:
    """Drop trailing all-padding columns (exact, see module doc), keeping at least min_len."""
    width = max(int((ids != PAD_ID).sum(axis=1).max(initial=0)), min_len)
    return torch.from_numpy(np.ascontiguousarray(ids[:, :width]))


def _logits(
    model: TextCNN, ids: np.ndarray, batch_size: int, top_k: int, tables: Sequence[torch.Tensor] | None = None
) -> torch.Tensor:
    """Eval-mode logits for encoded ids (call under inference_mode); batches of similar length go
    together so trimming pays off. With `tables`, through `forward_fused`."""
    order = np.argsort((ids != PAD_ID).sum(axis=1), kind="stable")
    out = torch.empty((len(ids), model.head.out_features), dtype=torch.float32)
    device = next(model.parameters()).device
    for start in range(0, len(ids), batch_size):
        idx = order[start : start + batch_size]
        (batch,) = to_device(host_batch((_trimmed(ids[idx], top_k),), device), device)
        logits = model(batch) if tables is None else model.forward_fused(batch, tables)
        out[torch.from_numpy(idx)] = logits.float().cpu()
    return out


def _tables_or_none(model: TextCNN) -> list[torch.Tensor] | None:
    """The fused tables pay on CPU cores; a GPU runs the convolutions directly."""
    on_cpu = next(model.parameters()).device.type == "cpu"
    return model.fused_tables() if on_cpu and model.fused_bytes() <= FUSED_MAX_BYTES else None


@dataclass
class TrainedTextCNN:
    model: TextCNN
    vocab: Vocab
    config: TextCNNConfig
    label_names: list[str]
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    embedding_coverage: float | None = None
    exclusive: bool = False  # a softmax over the labels (one per text) instead of one sigmoid each
    # Built on the first predict_proba: the model is final once trained or loaded.
    _tables: list[torch.Tensor] | None = field(default=None, init=False, repr=False, compare=False)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
        """(n, L) float32 probabilities."""
        ids = self.vocab.encode_batch(texts, self.config.effective_max_len)
        self.model.eval()
        with torch.inference_mode():
            if self._tables is None:
                self._tables = _tables_or_none(self.model)
            logits = _logits(self.model, ids, batch_size, self.config.top_k, self._tables)
            return _activate(logits, self.exclusive).numpy()

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / WEIGHTS_FILE)
        self.vocab.save(directory / VOCAB_FILE)
        meta = {
            "config": self.config.to_json(),
            "label_names": self.label_names,
            "embed_dim": self.model.embedding.embedding_dim,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "embedding_coverage": self.embedding_coverage,
            "exclusive": self.exclusive,
        }
        (directory / CONFIG_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "TrainedTextCNN":
        directory = Path(directory)
        meta = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        config = TextCNNConfig.from_json(meta["config"])
        vocab = Vocab.load(directory / VOCAB_FILE)
        model = _build_model(config, len(vocab), len(meta["label_names"]), meta["embed_dim"])
        model.load_state_dict(torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        model.eval()
        return cls(
            model, vocab, config, meta["label_names"], meta["history"], meta["best_epoch"], meta["embedding_coverage"],
            meta.get("exclusive", False),
        )  # fmt: skip


def _build_model(
    config: TextCNNConfig, vocab_size: int, num_labels: int, embed_dim: int, vectors: np.ndarray | None = None
) -> TextCNN:
    return TextCNN(
        vocab_size,
        num_labels,
        embed_dim=embed_dim,
        kernel_sizes=config.kernel_sizes,
        num_filters=config.num_filters,
        top_k=config.top_k,
        dropout=config.dropout,
        embedding_dropout=config.embedding_dropout,
        vectors=vectors,
        freeze_embeddings=config.freeze_embeddings,
        ngram_buckets=config.ngram_buckets,
    )


def _embeddings(config: TextCNNConfig, vocab: Vocab) -> tuple[np.ndarray | None, int, float | None]:
    """(vectors or None, embed_dim, coverage or None)."""
    if config.vectors_npy is None or config.vectors_vocab is None:
        return None, config.embed_dim or 128, None
    vectors = load_vectors(config.vectors_npy, config.vectors_vocab, vocab, seed=config.seed)
    if config.embed_dim is not None and config.embed_dim != vectors.shape[1]:
        raise ValueError(f"embed_dim {config.embed_dim} != pretrained dim {vectors.shape[1]}")
    return vectors, vectors.shape[1], vector_coverage(vocab, read_vector_tokens(config.vectors_vocab))


def _optimizers(model: TextCNN, config: TextCNNConfig) -> list[torch.optim.Optimizer]:
    """AdamW, the token embedding with its own learning rate when `embedding_lr` is set; the sparse
    bigram table gets SparseAdam (lazy Adam on the rows a batch touches; no weight decay)."""
    embedding = model.embedding.weight
    pairs = model.ngram_embedding.weight if model.ngram_embedding is not None else None
    rest = [p for p in model.parameters() if p.requires_grad and p is not embedding and p is not pairs]
    groups = [{"params": rest}]
    if embedding.requires_grad:
        lr = config.lr if config.embedding_lr is None else config.embedding_lr
        groups.append({"params": [embedding], "lr": lr})
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    ]
    if pairs is not None:
        optimizers.append(torch.optim.SparseAdam([pairs], lr=config.lr))
    return optimizers


def train_textcnn(
    train_texts: Sequence[str],
    train_y: np.ndarray,
    dev_texts: Sequence[str],
    dev_y: np.ndarray,
    config: TextCNNConfig | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    label_names: Sequence[str] | None = None,
    exclusive: bool = False,
) -> TrainedTextCNN:
    """Train on (train_texts, train_y (n, L) 0/1); keep the weights of the epoch with the best dev micro-F1.

    `on_epoch(epoch, metrics)` gets train_loss, dev_loss (same pos-weighted BCE as training),
    dev_micro_f1 (at config.threshold), lr and seconds after every epoch. Sets torch's global thread count.
    `exclusive`: softmax cross-entropy over the labels (a row with several: its labels share the
    target mass), dev micro-F1 of the argmax.
    """
    config = config or TextCNNConfig()
    train_y = np.asarray(train_y, dtype=np.float32)
    dev_y = np.asarray(dev_y, dtype=np.float32)
    if train_y.ndim != 2 or len(train_texts) != len(train_y) or len(dev_texts) != len(dev_y):
        raise ValueError("texts and label matrices must line up; labels must be (n, L)")
    num_labels = train_y.shape[1]
    label_names = list(label_names) if label_names is not None else [str(i) for i in range(num_labels)]
    if len(label_names) != num_labels:
        raise ValueError(f"{len(label_names)} label names for {num_labels} label columns")

    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    vocab = Vocab.build(train_texts, config.tokenizer, config.min_freq, config.max_vocab, config.lowercase)
    vectors, embed_dim, coverage = _embeddings(config, vocab)
    model = _build_model(config, len(vocab), num_labels, embed_dim, vectors).to(device)
    max_len = config.effective_max_len
    train_ids = vocab.encode_batch(train_texts, max_len)
    dev_ids = vocab.encode_batch(dev_texts, max_len)
    train_t, dev_t = torch.from_numpy(train_y), torch.from_numpy(dev_y)

    if exclusive:
        train_t, dev_t = _shares(train_t), _shares(dev_t)
        loss_fn = nn.CrossEntropyLoss()
    else:
        weights = torch.from_numpy(pos_weights(train_y, config.pos_weight_cap)).to(device)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=weights)
    optimizers = _optimizers(model, config)
    schedulers = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=config.lr_decay) for o in optimizers]

    history: list[dict] = []
    best_f1, best_epoch, best_state = -1.0, 0, copy.deepcopy(model.state_dict())
    for epoch in range(1, config.max_epochs + 1):
        started = time.perf_counter()
        lr = optimizers[0].param_groups[0]["lr"]  # this epoch's (decayed) base learning rate
        model.train()
        total, seen = 0.0, 0
        perm = rng.permutation(len(train_ids))
        for start in range(0, len(perm), config.batch_size):
            idx = perm[start : start + config.batch_size]
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            # pinned host memory and a non-blocking copy on a GPU (train/tokens.py); plain tensors on CPU
            batch, targets = to_device(
                host_batch((_trimmed(train_ids[idx], config.top_k), train_t[torch.from_numpy(idx)]), device), device
            )
            loss = loss_fn(model(batch), targets)
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        for scheduler in schedulers:
            scheduler.step()

        model.eval()
        with torch.inference_mode():
            dev_logits = _logits(model, dev_ids, 1024, config.top_k, _tables_or_none(model))
            dev_loss = float(loss_fn(dev_logits.to(device), dev_t.to(device))) if len(dev_ids) else float("nan")
        dev_f1 = micro_f1(dev_y, _fired(_activate(dev_logits, exclusive).numpy(), config.threshold, exclusive))
        metrics = {
            "train_loss": total / max(seen, 1),
            "dev_loss": dev_loss,
            "dev_micro_f1": dev_f1,
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }
        history.append({"epoch": epoch, **metrics})
        logger.info("textcnn epoch %d: %s", epoch, metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if dev_f1 > best_f1:
            best_f1, best_epoch, best_state = dev_f1, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.patience:
            break

    model.load_state_dict(best_state)
    model.to("cpu").eval()  # served on CPU, through the fused tables
    return TrainedTextCNN(model, vocab, config, label_names, history, best_epoch, coverage, exclusive)


def _activate(logits: torch.Tensor, exclusive: bool) -> torch.Tensor:
    return torch.softmax(logits, dim=1) if exclusive else torch.sigmoid(logits)


def _shares(targets: torch.Tensor) -> torch.Tensor:
    """Multi-hot rows → distributions for soft-target cross-entropy (an all-zero row stays zero: no loss)."""
    return targets / targets.sum(dim=1, keepdim=True).clamp_min(1.0)


def _fired(probs: np.ndarray, threshold: float, exclusive: bool) -> np.ndarray:
    """Decisions for the dev metric: the argmax for a softmax, each label over the cut otherwise."""
    if not exclusive:
        return probs >= threshold
    fired = np.zeros(probs.shape, dtype=bool)
    if len(probs):
        fired[np.arange(len(probs)), probs.argmax(axis=1)] = True
    return fired
