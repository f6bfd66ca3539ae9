"""One scheme's model of any type: a gate model and a sub-label model, trained, tuned and evaluated
the same way whatever the type (pure: no Dagster, no MLflow).

- gate model: binary, trained on every in-scope train row;
- sub-label model: multi-label, trained on gate-positive train rows only (the seed's setup);
- outputs are joint probabilities: column 0 = P(gate), column 1+j = P(gate) × P(label j | gate),
  so one per-label threshold table (tuned on dev) decides every column, and a sub-label can
  never fire without its gate.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from dagster_autotag.train.configs import TrainingOptions
from dagster_autotag.train.evaluate import Evaluation, evaluate
from dagster_autotag.train.targets import gate_vector, label_matrix
from dagster_autotag.train.thresholds import Thresholds, decide, tune_thresholds

MODEL_KINDS = ("linear", "textcnn", "bert", "knn")
META_FILE = "scheme_model.json"
THRESHOLDS_FILE = "thresholds.json"
EpochCallback = Callable[[str, int, dict], None]  # (task, epoch, metrics)


def _model_class(kind: str):
    if kind == "linear":
        from dagster_autotag.train.linear import LinearModel

        return LinearModel
    if kind == "textcnn":
        from dagster_autotag.train.textcnn import TrainedTextCNN

        return TrainedTextCNN
    if kind == "bert":
        from dagster_autotag.train.bert import TrainedBert

        return TrainedBert
    if kind == "knn":
        from dagster_autotag.train.knn import KNNModel

        return KNNModel
    raise ValueError(f"unknown model kind {kind!r}; one of {MODEL_KINDS}")


def fit_task(
    kind: str,
    config: object,
    train: tuple[list[str], np.ndarray],
    dev: tuple[list[str], np.ndarray],
    on_epoch: Callable[[int, dict], None] | None = None,
):
    """Train one model of `kind` on (texts, targets); `config` is that kind's config object."""
    if kind == "linear":
        from dagster_autotag.train.linear import LinearModel

        return LinearModel(config).fit(*train)
    if kind == "textcnn":
        from dagster_autotag.train.textcnn import train_textcnn

        return train_textcnn(*train, *dev, config, on_epoch=on_epoch)
    if kind == "bert":
        from dagster_autotag.train.bert import train_bert

        return train_bert(*train, *dev, config, on_epoch=on_epoch)
    if kind == "knn":
        from dagster_autotag.train.knn import KNNModel

        return KNNModel(config).fit(*train)  # nothing to tune on dev: the vote is the model
    raise ValueError(f"unknown model kind {kind!r}; one of {MODEL_KINDS}")


@dataclass
class SchemeModel:
    kind: str
    gate_name: str
    labels: list[str]
    gate_model: object
    label_model: object | None  # None when train has no gate-positive row
    thresholds: Thresholds | None = None
    top_k: int | None = None  # at most k sub-labels per item, decided at training (None = no cap)

    @property
    def targets(self) -> list[str]:
        return [self.gate_name, *self.labels]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        gate = self.gate_model.predict_proba(texts)[:, :1].astype(np.float32)
        if self.label_model is None or not self.labels:
            return np.hstack([gate, np.zeros((len(texts), len(self.labels)), dtype=np.float32)])
        return np.hstack([gate, gate * self.label_model.predict_proba(texts).astype(np.float32)])

    def shipped_targets(self) -> list[str]:
        return self.thresholds.label_names_shipped(self.targets)

    def decide(self, probs: np.ndarray, top_k: int | None = None, texts: list[str] | None = None) -> np.ndarray:
        """Shipped labels over their thresholds; a sub-label only with its gate. top_k: None = the
        cap stored with the model (texts: unused, the same signature as EnsembleModel.decide)."""
        return gated_decide(probs, self.thresholds, self.top_k if top_k is None else top_k)

    def save(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self.gate_model.save(path / "gate")
        if self.label_model is not None:
            self.label_model.save(path / "labels")
        meta = {
            "kind": self.kind,
            "gate": self.gate_name,
            "labels": self.labels,
            "has_label_model": self.label_model is not None,
            "top_k": self.top_k,
        }
        (path / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        write_thresholds(path, self.thresholds, self.targets)
        return path

    @classmethod
    def load(cls, path: Path) -> "SchemeModel":
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        model_class = _model_class(meta["kind"])
        label_model = model_class.load(path / "labels") if meta["has_label_model"] else None
        thresholds = read_thresholds(path, [meta["gate"], *meta["labels"]])
        gate_model = model_class.load(path / "gate")
        return cls(meta["kind"], meta["gate"], meta["labels"], gate_model, label_model, thresholds, meta.get("top_k"))


def gated_decide(probs: np.ndarray, thresholds: Thresholds, top_k: int | None) -> np.ndarray:
    """Targets over their thresholds (shipped only); a sub-label only with its gate; at most
    top_k sub-labels (the gate is a separate decision, not counted)."""
    fired = decide(probs, thresholds, top_k=None)
    fired[:, 1:] &= fired[:, :1]
    if top_k is not None:
        fired[:, 1:] &= decide(probs[:, 1:], _slice(thresholds, 1), top_k=top_k)
    return fired


def write_thresholds(path: Path, thresholds: Thresholds | None, targets: list[str]) -> None:
    if thresholds is not None:
        data = json.dumps(thresholds.to_dict(targets), ensure_ascii=False, indent=1)
        (path / THRESHOLDS_FILE).write_text(data, encoding="utf-8")


def read_thresholds(path: Path, targets: list[str]) -> Thresholds | None:
    if not (path / THRESHOLDS_FILE).exists():
        return None
    return Thresholds.from_dict(json.loads((path / THRESHOLDS_FILE).read_text(encoding="utf-8")), targets)


def _slice(t: Thresholds, start: int) -> Thresholds:
    return Thresholds(
        t.thresholds[start:], t.shipped[start:], t.precision[start:], t.recall[start:], t.f1[start:],
        t.support[start:], t.mode, t.precision_floor,
    )  # fmt: skip


@dataclass
class SplitData:
    itemids: list[str]
    texts: list[str]
    y: np.ndarray  # (n, 1 + L): gate, then labels

    @classmethod
    def read(cls, path: Path, labels: list[str]) -> "SplitData":
        frame = pl.read_parquet(path, columns=["itemid", "text", "gate", "labels"])
        y = np.hstack([gate_vector(frame["gate"]), label_matrix(frame["labels"], labels)])
        return cls(frame["itemid"].to_list(), frame["text"].fill_null("").to_list(), y)

    def gate_positive(self) -> "SplitData":
        keep = np.flatnonzero(self.y[:, 0] > 0)
        return SplitData([self.itemids[i] for i in keep], [self.texts[i] for i in keep], self.y[keep])


@dataclass
class TrainingResult:
    model: SchemeModel  # or an EnsembleModel: the same predict_proba / decide / save
    dev: Evaluation
    test: Evaluation
    rare_labels: list[str]
    seconds: dict[str, float] = field(default_factory=dict)

    def shipped_labels(self) -> list[str]:
        return self.model.shipped_targets()


def train_scheme_model(
    kind: str,
    config: object,
    dataset_dir: Path,
    options: TrainingOptions | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainingResult:
    """datasets/<scheme> → gate + sub-label models → thresholds on dev → evaluation on test."""
    options = options or TrainingOptions()
    manifest = json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8"))
    gate_name, labels = "+".join(manifest["gate"]), manifest["labels"]
    train, dev, test = (SplitData.read(dataset_dir / f"{s}.parquet", labels) for s in ("train", "dev", "test"))
    seconds = {}

    started = time.perf_counter()
    gate_model = fit_task(
        kind, config, (train.texts, train.y[:, :1]), (dev.texts, dev.y[:, :1]),
        on_epoch=(lambda e, m: on_epoch("gate", e, m)) if on_epoch else None,
    )  # fmt: skip
    seconds["train_gate"] = time.perf_counter() - started
    label_model = None
    train_pos, dev_pos = train.gate_positive(), dev.gate_positive()
    if labels and train_pos.texts:
        started = time.perf_counter()
        label_model = fit_task(
            kind, config, (train_pos.texts, train_pos.y[:, 1:]), (dev_pos.texts, dev_pos.y[:, 1:]),
            on_epoch=(lambda e, m: on_epoch("labels", e, m)) if on_epoch else None,
        )  # fmt: skip
        seconds["train_labels"] = time.perf_counter() - started
    model = SchemeModel(kind, gate_name, labels, gate_model, label_model, top_k=options.top_k)

    dev_probs = model.predict_proba(dev.texts)
    model.thresholds = tune_thresholds(
        dev.y, dev_probs, mode=options.threshold_mode, precision_floor=options.precision_floor
    )
    started = time.perf_counter()
    test_probs = model.predict_proba(test.texts)
    seconds["predict_test"] = time.perf_counter() - started
    return TrainingResult(
        model=model,
        dev=evaluate(dev.y, model.decide(dev_probs), dev_probs, model.targets, dev.texts, dev.itemids),
        test=evaluate(test.y, model.decide(test_probs), test_probs, model.targets, test.texts, test.itemids),
        rare_labels=list(manifest.get("rare_labels", [])),
        seconds=seconds,
    )


def score_on_split(model, data: SplitData, metric: str = "micro_f1") -> float:
    """The promotion metric of a model on a split, with the model's own thresholds."""
    probs = model.predict_proba(data.texts)
    result = evaluate(data.y, model.decide(probs, texts=data.texts), probs, model.targets, data.texts, data.itemids)
    if metric not in result.summary:
        raise KeyError(f"unknown metric {metric!r}; one of {sorted(result.summary)}")
    return float(result.summary[metric])
