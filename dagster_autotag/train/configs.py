"""Options of each model type: plain dataclasses, the one place their defaults and descriptions live.

No torch or scikit-learn here (linear.py, textcnn.py and bert.py import them): the Dagster code
location derives its run config from these classes (run_config.py) without paying for those imports.
"""

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Literal

from dagster_autotag.options import option


@dataclass
class TrainingOptions:
    """What every model type shares: how labels ship, and how the promotion gate compares."""

    threshold_mode: Literal["precision_floor", "f1"] = option(
        "precision_floor", "precision_floor: the highest recall whose precision bound ≥ the floor; f1: max F1"
    )
    # the content team's bar
    precision_floor: float = option(0.8, "a label ships only if the lower bound of its precision reaches this")
    # Issue #14: dev point precision from 40–60 positives did not hold on unseen days.
    confidence: float = option(
        0.9, "one-sided Clopper–Pearson confidence of that lower bound; 0 = the point precision (no bound)"
    )
    threshold_folds: int = option(
        5, "k: tune thresholds on out-of-fold probabilities of k models on train folds, plus dev; 0 or 1 = dev only"
    )
    # Each fold costs one more training: linear seconds, TextCNN about a training each (minutes on
    # CPU); BERT is left out by default, a CPU fine-tuning on BDCI alone took 1.6 h.
    oof_kinds: tuple[str, ...] = option(("linear", "textcnn"), "model types tuned out of fold; the others on dev")
    oof_max_rows: int = option(20_000, "textcnn/bert: out of fold only up to this many train rows, else dev")
    top_k: int | None = option(None, "at most k sub-labels per item; null or 0 = no cap; stored with the model")
    # Issue #14 §3, exclusive schemes only: off by default, the per-label cuts already guard precision
    min_argmax_confidence: float | None = option(
        None, "exclusive schemes: the argmax sub-label only when its softmax probability reaches this; null = off"
    )
    promotion_metric: str = option("micro_f1", "test metric compared with the champion's")
    promotion_tolerance: float = option(0.005, "a challenger may be this much below the champion and still win")

    def __post_init__(self) -> None:
        self.top_k = self.top_k or None  # run configs written before said 0 for no cap
        self.oof_kinds = tuple(self.oof_kinds)  # a list from run config
        if not (self.confidence == 0 or 0.5 <= self.confidence < 1):
            raise ValueError(f"confidence must be 0 (no bound) or in [0.5, 1), got {self.confidence}")
        self.min_argmax_confidence = self.min_argmax_confidence or None  # 0 = off
        if self.min_argmax_confidence is not None and not 0 < self.min_argmax_confidence <= 1:
            raise ValueError(f"min_argmax_confidence must be in (0, 1] or null, got {self.min_argmax_confidence}")
        if self.threshold_folds < 0 or self.oof_max_rows < 0:
            raise ValueError("threshold_folds and oof_max_rows must be ≥ 0")


@dataclass
class LinearConfig:
    analyzer: Literal["char", "char_wb"] = option("char_wb", "TF-IDF n-grams of characters (char_wb: within words)")
    # (1, 2) did slightly better on BDCI (micro-F1 .864 vs .858)
    ngram_range: tuple[int, int] = option((1, 3), "[shortest, longest] character n-gram")
    min_df: int = option(2, "n-grams in fewer texts are dropped")
    max_features: int | None = option(200_000, "keep the most frequent n-grams; null = all")
    sublinear_tf: bool = option(True, "1 + log(tf) instead of tf")
    C: float = option(4.0, "inverse regularisation strength of each logistic regression")
    # "balanced": most labels are rare, and unweighted LR then under-predicts them at a 0.5 cut
    class_weight: Literal["balanced"] | None = option("balanced", "balanced: by inverse class frequency; null: equal")
    solver: Literal["liblinear", "saga"] = "liblinear"
    max_iter: int = 1000
    # liblinear's dual solver is several times faster when n-gram features outnumber texts
    dual: bool | None = option(None, "liblinear's dual form; null = dual when n-grams outnumber texts")
    # liblinear releases the GIL; the box has 2 cores
    n_jobs: int = option(2, "labels fitted in parallel threads")

    def __post_init__(self):
        self.ngram_range = tuple(self.ngram_range)  # a JSON round trip turns it into a list

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TextCNNConfig:
    tokenizer: Literal["char", "word"] = option("char", "characters, or jieba words")
    max_len: int | None = option(None, "tokens kept per text; null: 128 for char, 64 for word")
    # <unk> then occurs in training, so it gets trained too
    min_freq: int = option(2, "rarer tokens map to <unk>")
    max_vocab: int = 50_000
    lowercase: bool = True
    embed_dim: int | None = option(None, "embedding size; null: the vectors' dimension, else 128")
    vectors_npy: str | None = option(None, "pretrained vectors (.npy), with vectors_vocab (one token a line)")
    vectors_vocab: str | None = None
    freeze_embeddings: bool = option(False, "true: static pretrained vectors; false: fine-tuned")
    ngram_buckets: int = option(0, "> 0: add a hashed token-bigram embedding channel with this many buckets")
    kernel_sizes: tuple[int, ...] = (2, 3, 4)  # the seed model used (7, 8, 9)
    num_filters: int = option(128, "filters per kernel size")
    top_k: int = option(1, "1 = max pooling; k > 1 = k-max pooling, k values per filter concatenated")
    dropout: float = option(0.5, "dropout before the output layer")
    # Dropout on the convolutions' inputs (whole embedding dimensions per text): regularises the
    # embedding tables, which otherwise memorise a small training set within a few epochs.
    embedding_dropout: float = option(0.0, "dropout of whole embedding dimensions per text")
    lr: float = 1e-3
    # Lower keeps fine-tuned pretrained vectors from chasing a small training set.
    embedding_lr: float | None = option(None, "learning rate of the embeddings; null: lr")
    weight_decay: float = option(0.0, "AdamW's decoupled decay, on every trained weight")
    lr_decay: float = option(1.0, "every learning rate is multiplied by this after each epoch")
    batch_size: int = 64
    max_epochs: int = 10
    patience: int = option(2, "epochs without a better dev micro-F1 before stopping")
    pos_weight_cap: float = option(10.0, "cap of BCE's pos_weight (negatives / positives per label)")
    threshold: float = option(0.5, "only for the dev micro-F1 that drives early stopping")
    seed: int = 0
    num_threads: int = option(2, "torch CPU threads")

    def __post_init__(self) -> None:
        self.kernel_sizes = tuple(int(k) for k in self.kernel_sizes)
        # Run configs scaffolded before the run config was derived from this class wrote 0 and "" for null.
        self.embed_dim = self.embed_dim or None
        self.vectors_npy, self.vectors_vocab = self.vectors_npy or None, self.vectors_vocab or None
        if self.tokenizer not in ("char", "word"):
            raise ValueError(f"tokenizer must be 'char' or 'word', not {self.tokenizer!r}")
        if (self.vectors_npy is None) != (self.vectors_vocab is None):
            raise ValueError("vectors_npy and vectors_vocab go together")
        if not self.kernel_sizes or min(self.kernel_sizes) < 1 or self.top_k < 1:
            raise ValueError("kernel_sizes and top_k must be positive")
        if self.effective_max_len < self.top_k:
            raise ValueError("max_len must be at least top_k")
        if not 0.0 <= self.embedding_dropout < 1.0:
            raise ValueError("embedding_dropout must be in [0, 1)")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError("lr_decay must be in (0, 1]")
        if self.ngram_buckets < 0 or self.ngram_buckets == 1:
            raise ValueError("ngram_buckets must be 0 (off) or at least 2")

    @property
    def effective_max_len(self) -> int:
        if self.max_len is not None:
            return self.max_len
        return 128 if self.tokenizer == "char" else 64

    def to_json(self) -> dict:
        data = asdict(self)
        data["kernel_sizes"] = list(self.kernel_sizes)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "TextCNNConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class BertTrainConfig:
    model_dir: str = option(MISSING, "a local transformers directory (config, weights, tokenizer)")
    max_len: int = option(128, "tokens kept per text")
    # Issue #15: batch 32 left an H200 idle; the automatic GPU batch also scales the learning rates.
    batch_size: int = option(0, "global batch (all ranks together); 0 = 32 on CPU, 256 on a GPU")
    lr: float = option(3e-5, "peak learning rate of the encoder (at batch 32; see batch_size)")
    # the fresh head learns faster than the pretrained encoder
    head_lr: float = option(1e-3, "peak learning rate of the classification head")
    max_epochs: int = 3
    warmup_ratio: float = option(0.1, "share of the steps with a linear warmup (then linear decay)")
    weight_decay: float = option(0.01, "AdamW decay of the encoder's weights (not biases, LayerNorm, head)")
    grad_clip: float = option(1.0, "gradient norm clip")
    patience: int = option(2, "epochs without a better dev micro-F1 before stopping")
    pos_weight_cap: float = option(10.0, "cap of BCE's pos_weight (negatives / positives per label)")
    dropout: float = option(0.1, "dropout before the head")
    seed: int = 0
    num_threads: int = option(2, "torch CPU threads (per process)")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = option(
        "auto", "auto: bf16 on a GPU that supports it, else fp16 on GPU; always fp32 on CPU"
    )
    # on 2 CPU cores batch 32 beat 128 by 10-20 % with every engine (activations stay in cache; BENCHMARKS.md)
    eval_batch_size: int = option(0, "texts per inference batch; 0 = 32 on CPU, 1024 on a GPU")
    attn_implementation: Literal["sdpa", "eager"] = option("sdpa", "the encoder's attention kernel")
    torch_compile: bool = option(False, "torch.compile the model for training on a GPU (pays on long runs only)")
    # Distributed training (train/distributed.py): the asset runs torchrun through Dagster Pipes.
    nproc_per_node: int = option(0, "0 = train inside the Dagster step; n = torchrun with n processes (GPUs) a node")
    nnodes: int = option(1, "machines in the job; > 1 needs rdzv_endpoint and torchrun started on each")
    rdzv_endpoint: str = option("", "host:port of the c10d rendezvous; empty = a standalone single node")
    dist_backend: Literal["auto", "nccl", "gloo"] = option("auto", "auto: nccl on GPUs, gloo on CPU")
    # Issue #15: 16.6 items/s with PyTorch fp32 on 2 cores; bf16 is 3.2–4.7× fp32, micro-F1 within 0.001 (BENCHMARKS.md).
    inference: Literal["torch", "torch_bf16", "onnx", "onnx_int8"] = option(
        "torch",
        "CPU inference of the saved model: PyTorch fp32 or bf16 (needs AMX / AVX-512 BF16), or ONNX Runtime "
        "(fp32 / int8 dynamic quantisation)",
    )

    def __post_init__(self) -> None:
        if self.batch_size < 0 or self.eval_batch_size < 0 or self.nproc_per_node < 0 or self.nnodes < 1:
            raise ValueError("batch_size, eval_batch_size, nproc_per_node must be ≥ 0 and nnodes ≥ 1")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("nnodes > 1 needs rdzv_endpoint (host:port reachable from every node)")

    def batch_for(self, on_gpu: bool) -> tuple[int, float]:
        """(global batch, learning-rate factor): an explicit batch_size keeps lr as given; the
        automatic GPU batch (256) scales it by sqrt(256 / 32) (the square-root rule for Adam)."""
        if self.batch_size:
            return self.batch_size, 1.0
        return (256, (256 / 32) ** 0.5) if on_gpu else (32, 1.0)

    def eval_batch_for(self, on_gpu: bool) -> int:
        return self.eval_batch_size or (1024 if on_gpu else 32)


@dataclass
class KNNConfig:
    model_dir: str = option(MISSING, "a local transformers encoder directory (e.g. e5-small); never fine-tuned")
    k: int = option(20, "neighbours that vote")
    # e5 was trained with "query: " / "passage: " prefixes; "query: " on both sides suits symmetric similarity
    text_prefix: str = option("", "prepended to every text before encoding (e5: 'query: ')")
    temperature: float = option(0.05, "vote weight exp(cosine / temperature): lower = nearer neighbours count more")
    max_len: int = option(128, "tokens kept per text")
    batch_size: int = option(64, "texts encoded at once")
    num_threads: int = 2

    def __post_init__(self) -> None:
        if self.k < 1 or self.temperature <= 0 or self.max_len < 1 or self.batch_size < 1:
            raise ValueError("k, temperature, max_len and batch_size must be positive")
