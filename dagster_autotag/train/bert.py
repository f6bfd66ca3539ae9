"""Fine-tune any local transformers encoder directory with a multi-label head (pure PyTorch).

Production points `model_dir` at a Chinese RoBERTa-wwm directory; benchmarks use the e5-small
encoder built by ../shared/tools/make_pretrained_encoder.sh; tests build a tiny BertConfig model.
Nothing is downloaded: every from_pretrained call is local_files_only.
"""

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dagster_autotag.train.batching import length_sorted_batches
from dagster_autotag.train.configs import BertTrainConfig

HEAD_FILE = "head.pt"
CONFIG_FILE = "autotag_bert.json"


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
    def __init__(self, model: BertMultiLabel, tokenizer, config: BertTrainConfig, history: list[dict] | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.history = history or []
        self.device = next(model.parameters()).device

    def _batches(self, texts: list[str], batch_size: int):
        for idx, enc in length_sorted_batches(self.tokenizer, texts, batch_size, self.config.max_len):
            yield idx, enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def predict_proba(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        self.model.eval()
        out = np.zeros((len(texts), self.model.head.out_features), dtype=np.float32)
        with torch.inference_mode(), _autocast(self.device, self.config.precision):
            for idx, ids, mask in self._batches(list(texts), batch_size):
                out[idx] = torch.sigmoid(self.model(ids, mask).float()).cpu().numpy()
        return out

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.model.encoder.save_pretrained(path / "encoder")
        self.tokenizer.save_pretrained(path / "encoder")
        torch.save(self.model.head.state_dict(), path / HEAD_FILE)
        meta = {"config": asdict(self.config), "n_labels": self.model.head.out_features, "history": self.history}
        (path / CONFIG_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, device: str | None = None) -> "TrainedBert":
        from transformers import AutoModel, AutoTokenizer

        meta = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        config = BertTrainConfig(**meta["config"])
        torch.set_num_threads(config.num_threads)
        encoder = AutoModel.from_pretrained(path / "encoder", local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path / "encoder", local_files_only=True)
        model = BertMultiLabel(encoder, meta["n_labels"], config.dropout)
        model.head.load_state_dict(torch.load(path / HEAD_FILE, map_location="cpu", weights_only=True))
        model.to(device or _device())
        return cls(model, tokenizer, config, meta.get("history"))


def train_bert(
    train_texts: list[str],
    train_y: np.ndarray,
    dev_texts: list[str],
    dev_y: np.ndarray,
    config: BertTrainConfig,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainedBert:
    """BCE-with-logits (pos_weight from label frequencies, capped), AdamW with linear warmup and
    decay, gradient clipping, early stopping on dev micro-F1 with the best weights restored."""
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    torch.set_num_threads(config.num_threads)
    device = _device()
    encoder = AutoModel.from_pretrained(config.model_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(config.model_dir, local_files_only=True)
    model = BertMultiLabel(encoder, train_y.shape[1], config.dropout).to(device)
    trained = TrainedBert(model, tokenizer, config)

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {
            "params": [p for n, p in encoder.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for n, p in encoder.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
        {"params": model.head.parameters(), "weight_decay": 0.0, "lr": config.head_lr},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    steps = config.max_epochs * math.ceil(len(train_texts) / config.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * steps), steps)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight(train_y, config.pos_weight_cap).to(device))
    scaler = torch.amp.GradScaler(enabled=_precision(device, config.precision) == torch.float16)
    generator = np.random.default_rng(config.seed)
    targets = torch.tensor(train_y, dtype=torch.float32)

    best, best_state, waited = -1.0, None, 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = generator.permutation(len(train_texts))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            enc = tokenizer(
                [train_texts[i] for i in idx],
                max_length=config.max_len,
                truncation=True,
                padding=True,
                return_tensors="pt",
            )
            with _autocast(device, config.precision):
                logits = model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
                loss = loss_fn(logits.float(), targets[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        dev_probs = trained.predict_proba(dev_texts)
        metrics = {"train_loss": total / max(len(order), 1), "dev_micro_f1": micro_f1(dev_y, dev_probs)}
        trained.history.append({"epoch": epoch, **metrics})
        if on_epoch:
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
