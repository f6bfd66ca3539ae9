"""Fine-tune any local transformers encoder directory with a multi-label head (pure PyTorch).

Production points `model_dir` at a Chinese RoBERTa-wwm directory; benchmarks use the e5-small
encoder built by ../shared/tools/make_pretrained_encoder.sh; tests build a tiny BertConfig model.
Nothing is downloaded: every from_pretrained call is local_files_only.

Data path (issue #15, train/tokens.py): each split is tokenised once (cached beside the dataset
when the caller gives a folder), batches are length-bucketed, host batches are collated and pinned
one step ahead in a thread and copied without blocking. Under torchrun (train/distributed.py)
the model is wrapped in DistributedDataParallel, each rank takes its part of every global batch,
dev and test inference are sharded over the ranks and all-reduced, and every rank reaches the same
early-stopping decision. Imports only torch, transformers and numpy (bench/gpu.py relies on it).
"""

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dagster_autotag.train import distributed
from dagster_autotag.train.configs import BertTrainConfig
from dagster_autotag.train.heap import release_free_memory
from dagster_autotag.train.tokens import (
    Encoded,
    bucketed_batches,
    cached_encode,
    encode,
    host_batch,
    prefetched,
    sorted_batches,
    to_device,
)

HEAD_FILE = "head.pt"
CONFIG_FILE = "autotag_bert.json"
INFERENCE_CHUNK = 16  # batches of texts tokenised together, ahead of the model


class BertMultiLabel(nn.Module):
    """Encoder + dropout + linear head over the first token ([CLS] / <s>)."""

    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(self.dropout(hidden[:, 0]))


def pos_weight(y: np.ndarray, cap: float) -> torch.Tensor:
    positives = y.sum(axis=0)
    weight = np.where(positives > 0, (len(y) - positives) / np.maximum(positives, 1), 1.0)
    return torch.tensor(np.clip(weight, 1.0, cap), dtype=torch.float32)


def micro_f1(y: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> float:
    pred = probs >= threshold
    tp = float((pred & (y > 0.5)).sum())
    denominator = float(pred.sum() + (y > 0.5).sum())
    return 2 * tp / denominator if denominator else 0.0


class TrainedBert:
    def __init__(
        self,
        model: BertMultiLabel,
        tokenizer,
        config: BertTrainConfig,
        history: list[dict] | None = None,
        exclusive: bool = False,
    ):
        self.model = model
        self.exclusive = exclusive  # a softmax over the labels (one per text) instead of one sigmoid each
        self.tokenizer = tokenizer
        self.config = config
        self.history = history or []
        self.device = next(model.parameters()).device
        # the CPU serving engine config.inference names (bert_bf16.Bf16Bert, bert_onnx.OnnxBert), or None: PyTorch
        self.engine = None

    @property
    def n_labels(self) -> int:
        return self.model.head.out_features

    def _default_batch(self, batch_size: int | None) -> int:
        return batch_size or self.config.eval_batch_for(self.device.type == "cuda")

    def predict_proba(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Raw texts → probabilities. Texts are sorted by length and tokenised a chunk at a time in
        a background thread, ahead of the model, so memory stays flat whatever the number of texts.
        Under torchrun each rank scores its share and the results are all-reduced."""
        texts = list(texts)
        batch_size = self._default_batch(batch_size)
        rank = distributed.current()
        order = np.argsort([len(t) if isinstance(t, str) else 0 for t in texts], kind="stable")
        mine = order[rank.rank :: rank.world_size]
        chunk = batch_size * INFERENCE_CHUNK
        chunks = [mine[i : i + chunk] for i in range(0, len(mine), chunk)]
        out = np.zeros((len(texts), self.n_labels), dtype=np.float32)

        def tokenised(rows: np.ndarray) -> tuple[np.ndarray, Encoded]:
            return rows, encode(self.tokenizer, [texts[i] for i in rows], self.config.max_len)

        for rows, encoded in prefetched(tokenised, chunks):
            out[rows] = self.predict_encoded(encoded, batch_size, shard=False)
            release_free_memory()
        return distributed.all_reduce_sum(out, self.device) if rank.distributed else out

    def predict_encoded(self, encoded: Encoded, batch_size: int | None = None, shard: bool = True) -> np.ndarray:
        """Token ids → probabilities; `shard`: under torchrun, each rank scores every world_size-th
        batch and the results are all-reduced (every rank gets them all)."""
        batch_size = self._default_batch(batch_size)
        if self.engine is not None:
            return self.engine.predict_encoded(encoded, batch_size, self.n_labels, self.exclusive)
        rank = distributed.current() if shard else distributed.Rank()
        batches = sorted_batches(encoded.lengths, batch_size)[rank.rank :: rank.world_size]
        out = np.zeros((len(encoded), self.n_labels), dtype=np.float32)

        def host(rows: np.ndarray):
            return rows, host_batch(encoded.batch(rows), self.device)

        self.model.eval()
        with torch.inference_mode(), _autocast(self.device, self.config.precision):
            for rows, tensors in prefetched(host, batches):
                ids, mask = to_device(tensors, self.device)
                logits = self.model(ids, mask).float()
                out[rows] = (torch.softmax(logits, dim=1) if self.exclusive else torch.sigmoid(logits)).cpu().numpy()
        return distributed.all_reduce_sum(out, self.device) if rank.distributed else out

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.model.encoder.save_pretrained(path / "encoder")
        self.tokenizer.save_pretrained(path / "encoder")
        torch.save(self.model.head.state_dict(), path / HEAD_FILE)
        meta = {"config": asdict(self.config), "n_labels": self.n_labels, "history": self.history}
        meta["exclusive"] = self.exclusive
        (path / CONFIG_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        if self.config.inference.startswith("onnx"):
            from dagster_autotag.train.bert_onnx import export_onnx

            export_onnx(self, path, quantize=self.config.inference == "onnx_int8")

    def score_with_serving_engine(self) -> None:
        """From now on, score with the engine `config.inference` names (PyTorch bf16, ONNX Runtime
        fp32 or int8, on CPU), so that the thresholds tuned next, and the test score, are those of
        what will serve: int8 moves probabilities: thresholds tuned on PyTorch's cost the int8
        variants up to 0.09 BDCI micro-F1, the engine's own at most 0.017 (bench/onnx_cpu.py)."""
        if self.config.inference == "torch":
            return
        with tempfile.TemporaryDirectory(prefix="autotag-onnx-") as work:  # the session keeps the graph in memory
            if self.config.inference.startswith("onnx"):  # bf16 needs neither onnx nor onnxruntime
                from dagster_autotag.train.bert_onnx import export_onnx

                export_onnx(self, Path(work), quantize=self.config.inference == "onnx_int8")
            self.engine = self._cpu_engine(Path(work))

    def _cpu_engine(self, onnx_dir: Path):
        """The engine a non-torch `config.inference` names; an ONNX engine reads its graph from onnx_dir."""
        if self.config.inference == "torch_bf16":
            from dagster_autotag.train.bert_bf16 import Bf16Bert

            return Bf16Bert(self.model)
        from dagster_autotag.train.bert_onnx import OnnxBert

        quantized = self.config.inference == "onnx_int8"
        return OnnxBert.load(onnx_dir, quantized=quantized, threads=self.config.num_threads)

    @classmethod
    def load(cls, path: Path, device: str | None = None) -> "TrainedBert":
        from transformers import AutoModel, AutoTokenizer

        meta = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        known = set(BertTrainConfig.__dataclass_fields__)
        config = BertTrainConfig(**{k: v for k, v in meta["config"].items() if k in known})
        torch.set_num_threads(config.num_threads)
        encoder = AutoModel.from_pretrained(
            path / "encoder", local_files_only=True, attn_implementation=config.attn_implementation, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(path / "encoder", local_files_only=True)
        model = BertMultiLabel(encoder, meta["n_labels"], config.dropout)
        model.head.load_state_dict(torch.load(path / HEAD_FILE, map_location="cpu", weights_only=True))
        model.to(device or _device())
        trained = cls(model, tokenizer, config, meta.get("history"), meta.get("exclusive", False))
        if config.inference != "torch" and trained.device.type == "cpu":
            trained.engine = trained._cpu_engine(path)
        return trained


def train_bert(
    train_texts: list[str],
    train_y: np.ndarray,
    dev_texts: list[str],
    dev_y: np.ndarray,
    config: BertTrainConfig,
    on_epoch: Callable[[int, dict], None] | None = None,
    exclusive: bool = False,
    cache_dir: Path | None = None,
) -> TrainedBert:
    """BCE-with-logits (pos_weight from label frequencies, capped), AdamW with linear warmup and
    decay, gradient clipping, early stopping on dev micro-F1 with the best weights restored.
    `exclusive`: softmax cross-entropy (a row's labels share its target mass), dev F1 of the argmax.
    `cache_dir`: where token ids are cached (train/tokens.py); None = tokenise in memory.
    Under torchrun: DDP, the same global batches as one process (each rank its part), so with
    dropout off the result matches a one-process run up to floating-point summation order."""
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    rank = distributed.current()
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    torch.set_num_threads(config.num_threads)
    device = rank.device if rank.distributed else _device()
    on_gpu = device.type == "cuda"
    batch_size, lr_factor = config.batch_for(on_gpu)
    encoder = AutoModel.from_pretrained(
        config.model_dir, local_files_only=True, attn_implementation=config.attn_implementation, dtype=torch.float32
    )
    if getattr(encoder, "pooler", None) is not None:
        # the head reads the first token's hidden state, never the pooler: frozen, DDP would wait for its gradients
        encoder.pooler.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(config.model_dir, local_files_only=True)
    model = BertMultiLabel(encoder, train_y.shape[1], config.dropout).to(device)
    trained = TrainedBert(model, tokenizer, config, exclusive=exclusive)
    train_enc = cached_encode(tokenizer, list(train_texts), config.max_len, cache_dir)
    dev_enc = cached_encode(tokenizer, list(dev_texts), config.max_len, cache_dir)

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {
            "params": [p for n, p in encoder.named_parameters() if not n.endswith(no_decay) and p.requires_grad],
            "weight_decay": config.weight_decay,
        },
        {
            "params": [p for n, p in encoder.named_parameters() if n.endswith(no_decay) and p.requires_grad],
            "weight_decay": 0.0,
        },
        {"params": model.head.parameters(), "weight_decay": 0.0, "lr": config.head_lr * lr_factor},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr * lr_factor, fused=on_gpu)
    steps = config.max_epochs * math.ceil(len(train_texts) / batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * steps), steps)
    # per element, summed, then divided by the global batch's element count: DDP's gradient mean over
    # ranks then equals one process's mean over the global batch, even when the ranks' parts differ in size
    if exclusive:
        train_y = train_y / np.maximum(train_y.sum(axis=1, keepdims=True), 1.0)  # soft targets
        cross_entropy = nn.CrossEntropyLoss(reduction="none")

        def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            # a row's loss spread over its columns, so the element mean below is the row mean
            return cross_entropy(logits, y).unsqueeze(1).expand_as(y)
    else:
        weights = pos_weight(train_y, config.pos_weight_cap).to(device)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=weights, reduction="none")
    scaler = torch.amp.GradScaler(enabled=_precision(device, config.precision) == torch.float16)
    generator = np.random.default_rng(config.seed)
    targets = torch.tensor(np.asarray(train_y), dtype=torch.float32)
    step_model = _wrapped(model, rank, config.torch_compile and on_gpu)

    def host(rows: np.ndarray):
        part = distributed.shard(rows, rank)
        # a rank left without rows (a last batch smaller than the world) runs one row at weight 0:
        # DDP needs every rank's gradients, and the result stays that of one process
        weight = torch.ones(len(part)) if len(part) else torch.zeros(1)
        part = part if len(part) else rows[:1]
        return len(rows), host_batch((*train_enc.batch(part), targets[part], weight), device)

    best, best_state, waited = -1.0, None, 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        started = time.perf_counter()
        batches = bucketed_batches(train_enc.lengths, batch_size, generator)
        sums = np.zeros(2)  # loss sum, rows: all-reduced into the epoch's train loss
        for n_global, tensors in prefetched(host, batches):
            ids, mask, y, weight = to_device(tensors, device)
            with _autocast(device, config.precision):
                logits = step_model(ids, mask)
                loss_sum = (loss_fn(logits.float(), y) * weight.unsqueeze(1)).sum()
            loss = loss_sum * rank.world_size / (n_global * y.shape[1])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            sums += (float(loss_sum.detach()) / y.shape[1], float(weight.sum()))
        sums = distributed.all_reduce_sum(sums, device)
        trained_at = time.perf_counter()
        dev_probs = trained.predict_encoded(dev_enc)
        if exclusive:  # the argmax is the decision: one-hot it for the dev metric
            dev_probs = (dev_probs >= dev_probs.max(axis=1, keepdims=True)).astype(np.float32)
        metrics = {
            "train_loss": sums[0] / max(sums[1], 1),
            "dev_micro_f1": micro_f1(dev_y, dev_probs),
            # bench/gpu.py: samples/s with and without the dev evaluation
            "train_seconds": trained_at - started,
            "dev_seconds": time.perf_counter() - trained_at,
        }
        trained.history.append({"epoch": epoch, **metrics})
        if on_epoch and rank.is_main:
            on_epoch(epoch, metrics)
        if metrics["dev_micro_f1"] > best:
            best, waited = metrics["dev_micro_f1"], 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return trained


def _wrapped(model: nn.Module, rank: distributed.Rank, compile_it: bool) -> nn.Module:
    """What the training step calls: DDP under torchrun, compiled when asked (both share `model`'s weights)."""
    step_model = model
    if rank.distributed:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [rank.local_rank] if torch.cuda.is_available() else None
        step_model = DistributedDataParallel(model, device_ids=device_ids)
    if compile_it:
        step_model = torch.compile(step_model, dynamic=True)
    return step_model


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _precision(device: torch.device, precision: str) -> torch.dtype:
    if device.type != "cuda" or precision == "fp32":
        return torch.float32
    if precision == "fp16" or (precision == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def _autocast(device: torch.device, precision: str):
    dtype = _precision(device, precision)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)
