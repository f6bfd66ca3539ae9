"""One scheme's model of any type: a gate model and a sub-label model, trained, tuned and evaluated
the same way whatever the type (pure: no Dagster, no MLflow).

- gate model: binary, trained on every in-scope train row;
- sub-label model: multi-label, trained on gate-positive train rows only (the seed's setup);
- outputs are joint probabilities: column 0 = P(gate), column 1+j = P(gate) × P(label j | gate),
  so one per-label threshold table decides every column, and a sub-label can never fire without
  its gate;
- thresholds are tuned on dev plus, where affordable (`tuning_plan`), out-of-fold probabilities of
  train: k gate + sub-label models, each trained on the other folds exactly as the final one is on
  train, score the fold they did not see. Several times dev's positives tighten each label's
  precision bound (thresholds.py). The final model is trained once, on train, as before.
- exclusive schemes (one sub-label per item, issue #14 §3): the sub-label model of every kind is a
  softmax over the sub-labels, trained on the gate-positive rows that carry one; decisions take the
  argmax under the gate (`argmax_scores`: the other sub-labels' scores are zeroed before the
  per-label cuts), so each label still ships by its own precision bound; an optional minimum
  softmax probability of the argmax (`min_confidence`).
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.model_selection import GroupKFold

from dagster_autotag.train.configs import TrainingOptions
from dagster_autotag.train.evaluate import Evaluation, evaluate
from dagster_autotag.train.targets import gate_vector, label_matrix
from dagster_autotag.train.thresholds import Thresholds, decide, tune_thresholds

MODEL_KINDS = ("linear", "textcnn", "bert", "knn")
META_FILE = "scheme_model.json"
THRESHOLDS_FILE = "thresholds.json"
TOKEN_CACHE = "token_cache"  # datasets/<scheme>/token_cache: token ids of its splits (train/tokens.py)
TUNING_FILE = "tuning.parquet"  # the rows thresholds were tuned on: itemid, joint probabilities (for ensembles)
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
    exclusive: bool = False,
    cache_dir: Path | None = None,
):
    """Train one model of `kind` on (texts, targets); `config` is that kind's config object.
    `exclusive`: a softmax over the target columns (one label per text) instead of one sigmoid each;
    `cache_dir`: where bert caches token ids (train/tokens.py)."""
    if kind == "linear":
        from dagster_autotag.train.linear import LinearModel

        return LinearModel(config).fit(*train, exclusive=exclusive)
    if kind == "textcnn":
        from dagster_autotag.train.textcnn import train_textcnn

        return train_textcnn(*train, *dev, config, on_epoch=on_epoch, exclusive=exclusive)
    if kind == "bert":
        from dagster_autotag.train.bert import train_bert

        return train_bert(*train, *dev, config, on_epoch=on_epoch, exclusive=exclusive, cache_dir=cache_dir)
    if kind == "knn":
        from dagster_autotag.train.knn import KNNModel

        return KNNModel(config).fit(*train, exclusive=exclusive)  # nothing to tune on dev: the vote is the model
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
    tuning: "TuningSet | None" = None  # what the thresholds were tuned on; None for models saved before
    exclusive: bool = False  # the sub-label model is a softmax: the argmax decides (see module doc)
    min_confidence: float | None = None  # exclusive: the argmax's softmax probability must reach this

    @property
    def targets(self) -> list[str]:
        return [self.gate_name, *self.labels]

    def predict_proba(self, texts: list[str], skip_gate_negative: bool | None = None) -> np.ndarray:
        """Joint probabilities. `skip_gate_negative`: the sub-label model scores only the items whose
        gate fires (with the model's thresholds), the others get 0 for every sub-label; decisions are
        unchanged (a sub-label never fires without its gate) and encoder passes are saved. None = on
        for bert (its second encoder pass is the cost; issue #15), off for the cheap kinds; training's
        own dev/test scoring passes False (its PR curves want every score)."""
        if skip_gate_negative is None:
            skip_gate_negative = self.kind == "bert"
        texts = list(texts)
        gate = self.gate_model.predict_proba(texts)[:, :1].astype(np.float32)
        joint = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if self.label_model is None or not self.labels:
            return np.hstack([gate, joint])
        rows = np.arange(len(texts))
        if skip_gate_negative and self.thresholds is not None:
            rows = np.flatnonzero(decide(gate, self.thresholds.subset(slice(0, 1)))[:, 0])
        if len(rows):
            labels = self.label_model.predict_proba([texts[i] for i in rows]).astype(np.float32)
            joint[rows] = gate[rows] * labels
        return np.hstack([gate, joint])

    def shipped_targets(self) -> list[str]:
        return self.thresholds.label_names_shipped(self.targets)

    def decide(self, probs: np.ndarray, top_k: int | None = None, texts: list[str] | None = None) -> np.ndarray:
        """Shipped labels over their thresholds; a sub-label only with its gate. top_k: None = the
        cap stored with the model (texts: unused, the same signature as EnsembleModel.decide)."""
        if self.exclusive:
            return gated_decide(argmax_scores(probs, self.min_confidence), self.thresholds, None)
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
            "exclusive": self.exclusive,
            "min_confidence": self.min_confidence,
        }
        (path / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        write_thresholds(path, self.thresholds, self.targets)
        if self.tuning is not None:
            self.tuning.write(path / TUNING_FILE)
        return path

    @classmethod
    def load(cls, path: Path) -> "SchemeModel":
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        model_class = _model_class(meta["kind"])
        label_model = model_class.load(path / "labels") if meta["has_label_model"] else None
        thresholds = read_thresholds(path, [meta["gate"], *meta["labels"]])
        gate_model = model_class.load(path / "gate")
        tuning = TuningSet.read(path / TUNING_FILE) if (path / TUNING_FILE).exists() else None
        return cls(
            meta["kind"], meta["gate"], meta["labels"], gate_model, label_model, thresholds, meta.get("top_k"), tuning,
            meta.get("exclusive", False), meta.get("min_confidence"),
        )  # fmt: skip


def gated_decide(probs: np.ndarray, thresholds: Thresholds, top_k: int | None) -> np.ndarray:
    """Targets over their thresholds (shipped only); a sub-label only with its gate; at most
    top_k sub-labels (the gate is a separate decision, not counted)."""
    fired = decide(probs, thresholds, top_k=None)
    fired[:, 1:] &= fired[:, :1]
    if top_k is not None:
        fired[:, 1:] &= decide(probs[:, 1:], thresholds.subset(slice(1, None)), top_k=top_k)
    return fired


def argmax_scores(probs: np.ndarray, min_confidence: float | None = None) -> np.ndarray:
    """Joint probabilities (gate, then sub-labels) with every sub-label but the most probable one
    zeroed, and that one too when its share of the gate probability (the softmax probability) is
    below `min_confidence`. What an exclusive scheme's per-label cuts are tuned on and applied to."""
    probs = np.asarray(probs)
    out = np.zeros_like(probs)
    out[:, :1] = probs[:, :1]
    if probs.shape[1] > 1 and len(probs):
        rows, best = np.arange(len(probs)), probs[:, 1:].argmax(axis=1) + 1
        top = probs[rows, best]
        if min_confidence:
            top = np.where(top >= min_confidence * probs[:, 0], top, 0.0)
        out[rows, best] = top
    return out


def decision_scores(probs: np.ndarray, exclusive: bool, min_confidence: float | None = None) -> np.ndarray:
    """The scores per-label cuts are tuned on: the joint probabilities, or their argmax (exclusive)."""
    return argmax_scores(probs, min_confidence) if exclusive else np.asarray(probs)


def write_thresholds(path: Path, thresholds: Thresholds | None, targets: list[str]) -> None:
    if thresholds is not None:
        data = json.dumps(thresholds.to_dict(targets), ensure_ascii=False, indent=1)
        (path / THRESHOLDS_FILE).write_text(data, encoding="utf-8")


def read_thresholds(path: Path, targets: list[str]) -> Thresholds | None:
    if not (path / THRESHOLDS_FILE).exists():
        return None
    return Thresholds.from_dict(json.loads((path / THRESHOLDS_FILE).read_text(encoding="utf-8")), targets)


@dataclass
class TuningSet:
    """Rows and joint probabilities that thresholds were tuned on (each from a model not trained on
    it), kept with the model so that an ensemble can tune on its members' rows, not dev alone."""

    itemids: list[str]
    probs: np.ndarray  # (n, targets) float32

    def write(self, path: Path) -> None:
        frame = pl.DataFrame({"itemid": self.itemids}, schema={"itemid": pl.String})
        frame.with_columns(pl.Series("probs", np.asarray(self.probs, dtype=np.float32))).write_parquet(path)

    @classmethod
    def read(cls, path: Path) -> "TuningSet":
        frame = pl.read_parquet(path)
        return cls(frame["itemid"].to_list(), frame["probs"].to_numpy().astype(np.float32))


@dataclass
class SplitData:
    itemids: list[str]
    texts: list[str]
    y: np.ndarray  # (n, 1 + L): gate, then labels
    groups: np.ndarray | None = None  # text_hash (else itemid): rows that must share a fold
    copy: np.ndarray | None = None  # > 0: an oversampled duplicate of a train row

    def __post_init__(self) -> None:
        if self.groups is None:
            self.groups = np.asarray(self.itemids, dtype=object)
        if self.copy is None:
            self.copy = np.zeros(len(self.itemids), dtype=np.int32)

    @classmethod
    def read(cls, path: Path, labels: list[str]) -> "SplitData":
        present = pl.read_parquet_schema(path)
        extra = [c for c in ("text_hash", "copy") if c in present]  # older datasets may lack them
        frame = pl.read_parquet(path, columns=["itemid", "text", "gate", "labels", *extra])
        y = np.hstack([gate_vector(frame["gate"]), label_matrix(frame["labels"], labels)])
        groups = frame["text_hash"].fill_null(frame["itemid"]) if "text_hash" in extra else frame["itemid"]
        copy = frame["copy"].to_numpy() if "copy" in extra else None
        return cls(frame["itemid"].to_list(), frame["text"].fill_null("").to_list(), y, groups.to_numpy(), copy)

    def subset(self, index: np.ndarray) -> "SplitData":
        index = np.asarray(index, dtype=np.int64)
        return SplitData(
            [self.itemids[i] for i in index], [self.texts[i] for i in index], self.y[index], self.groups[index],
            self.copy[index],
        )  # fmt: skip

    def gate_positive(self) -> "SplitData":
        return self.subset(np.flatnonzero(self.y[:, 0] > 0))

    def originals(self) -> "SplitData":
        """One row per item: oversampled copies left out (they would count an item twice)."""
        return self.subset(np.flatnonzero(self.copy == 0))


@dataclass
class TrainingResult:
    model: SchemeModel  # or an EnsembleModel: the same predict_proba / decide / save
    dev: Evaluation
    test: Evaluation
    rare_labels: list[str]
    seconds: dict[str, float] = field(default_factory=dict)

    def shipped_labels(self) -> list[str]:
        return self.model.shipped_targets()


def fit_scheme(
    kind: str,
    config: object,
    gate_name: str,
    labels: list[str],
    train: SplitData,
    dev: SplitData,
    on_epoch: EpochCallback | None = None,
    seconds: dict[str, float] | None = None,
    exclusive: bool = False,
    cache_dir: Path | None = None,
) -> SchemeModel:
    """Gate model on every train row, sub-label model on the gate-positive ones (no thresholds yet);
    exclusive: a softmax sub-label model, on the gate-positive rows that carry a sub-label."""
    seconds = {} if seconds is None else seconds
    started = time.perf_counter()
    gate_model = fit_task(
        kind, config, (train.texts, train.y[:, :1]), (dev.texts, dev.y[:, :1]),
        on_epoch=(lambda e, m: on_epoch("gate", e, m)) if on_epoch else None, cache_dir=cache_dir,
    )  # fmt: skip
    seconds["train_gate"] = time.perf_counter() - started
    label_model = None
    train_pos, dev_pos = train.gate_positive(), dev.gate_positive()
    if exclusive:  # a softmax has no "none of them": a row without a sub-label teaches it nothing
        train_pos, dev_pos = (s.subset(np.flatnonzero(s.y[:, 1:].sum(axis=1) > 0)) for s in (train_pos, dev_pos))
    if labels and train_pos.texts:
        started = time.perf_counter()
        label_model = fit_task(
            kind, config, (train_pos.texts, train_pos.y[:, 1:]), (dev_pos.texts, dev_pos.y[:, 1:]),
            on_epoch=(lambda e, m: on_epoch("labels", e, m)) if on_epoch else None, exclusive=exclusive,
            cache_dir=cache_dir,
        )  # fmt: skip
        seconds["train_labels"] = time.perf_counter() - started
    return SchemeModel(kind, gate_name, labels, gate_model, label_model, exclusive=exclusive)


def tuning_plan(kind: str, options: TrainingOptions, train: SplitData, manifest: dict) -> tuple[int, str]:
    """(folds, note): k > 1 for out-of-fold tuning on train plus dev, 0 for dev only, and why not."""
    folds = options.threshold_folds
    if folds < 2:
        return 0, ""
    if (manifest.get("options") or {}).get("all_zero_ratio"):
        # thinned negatives would make train precision look better than the real mix gives
        return 0, "dev only: train's all-zero items are downsampled (all_zero_ratio)"
    if kind not in options.oof_kinds:
        return 0, f"dev only: {kind} is not in oof_kinds"
    if kind != "linear" and len(train.texts) > options.oof_max_rows:
        return 0, f"dev only: {len(train.texts)} train rows > oof_max_rows {options.oof_max_rows}"
    if len(np.unique(train.groups)) < folds:
        return 0, f"dev only: fewer than {folds} distinct train texts"
    return folds, ""


def out_of_fold(
    kind: str,
    config: object,
    gate_name: str,
    labels: list[str],
    train: SplitData,
    dev: SplitData,
    folds: int,
    exclusive: bool = False,
) -> tuple[SplitData, np.ndarray, list[float]]:
    """Joint probabilities of every train item from a scheme model that did not see it: k models,
    each trained on the other folds and early-stopped on dev like the final one. Identical texts
    (oversampled copies, duplicates) share a fold, else a fold model would have seen its answer.
    Returns the items (copies left out), their probabilities and each fold's seconds."""
    probs = np.zeros(train.y.shape, dtype=np.float32)
    seconds = []
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=0)
    for fit_rows, held_rows in splitter.split(train.texts, groups=train.groups):
        started = time.perf_counter()
        model = fit_scheme(kind, config, gate_name, labels, train.subset(fit_rows), dev, exclusive=exclusive)
        probs[held_rows] = model.predict_proba([train.texts[i] for i in held_rows])
        seconds.append(time.perf_counter() - started)
    keep = np.flatnonzero(train.copy == 0)
    return train.originals(), probs[keep], seconds


def train_scheme_model(
    kind: str,
    config: object,
    dataset_dir: Path,
    options: TrainingOptions | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainingResult:
    """datasets/<scheme> → gate + sub-label models → thresholds (dev, plus out-of-fold train where
    affordable) → evaluation on test."""
    return training_result(fit_and_score(kind, config, dataset_dir, options, on_epoch))


@dataclass
class Scored:
    """A tuned scheme model with its dev and test probabilities: what a torchrun job's rank 0 saves
    (train/distributed_train.py) and the Dagster side turns into a TrainingResult."""

    model: SchemeModel
    dataset_dir: Path
    dev_probs: np.ndarray
    test_probs: np.ndarray
    seconds: dict[str, float]


def fit_and_score(
    kind: str,
    config: object,
    dataset_dir: Path,
    options: TrainingOptions | None = None,
    on_epoch: EpochCallback | None = None,
) -> Scored:
    options = options or TrainingOptions()
    manifest = json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8"))
    gate_name, labels = "+".join(manifest["gate"]), manifest["labels"]
    train, dev, test = (SplitData.read(dataset_dir / f"{s}.parquet", labels) for s in ("train", "dev", "test"))
    seconds: dict[str, float] = {}
    exclusive = is_exclusive(manifest)
    cache_dir = dataset_dir / TOKEN_CACHE
    model = fit_scheme(kind, config, gate_name, labels, train, dev, on_epoch, seconds, exclusive, cache_dir)
    model.top_k = options.top_k
    model.min_confidence = options.min_argmax_confidence if exclusive else None
    for part in (model.gate_model, model.label_model):  # bert served by ONNX Runtime: tuned on its scores
        if hasattr(part, "score_with_serving_engine"):
            part.score_with_serving_engine()

    dev_probs = model.predict_proba(dev.texts, skip_gate_negative=False)
    folds, note = tuning_plan(kind, options, train, manifest)
    tuning, tuning_y, source = TuningSet(dev.itemids, dev_probs), dev.y, "dev"
    if folds:
        oof_rows, oof_probs, fold_seconds = out_of_fold(kind, config, gate_name, labels, train, dev, folds, exclusive)
        seconds |= {"oof": sum(fold_seconds), "oof_per_fold": sum(fold_seconds) / folds}
        tuning = TuningSet(oof_rows.itemids + dev.itemids, np.vstack([oof_probs, dev_probs]))
        tuning_y, source = np.vstack([oof_rows.y, dev.y]), f"oof({folds})+dev"
    model.tuning = tuning
    model.thresholds = tune_thresholds(
        tuning_y, decision_scores(tuning.probs, exclusive, model.min_confidence), mode=options.threshold_mode, precision_floor=options.precision_floor,
        confidence=options.confidence, source=source, note=note,
    )  # fmt: skip
    started = time.perf_counter()
    test_probs = model.predict_proba(test.texts, skip_gate_negative=False)
    seconds["predict_test"] = time.perf_counter() - started
    return Scored(model, dataset_dir, dev_probs, test_probs, seconds)


def training_result(scored: Scored) -> TrainingResult:
    """Dev and test evaluations of a scored model (the splits are read again: cheap next to training)."""
    manifest = json.loads((scored.dataset_dir / "manifest.json").read_text(encoding="utf-8"))
    model = scored.model
    dev, test = (SplitData.read(scored.dataset_dir / f"{s}.parquet", manifest["labels"]) for s in ("dev", "test"))
    return TrainingResult(
        model=model,
        dev=evaluate(dev.y, model.decide(scored.dev_probs), scored.dev_probs, model.targets, dev.texts, dev.itemids),
        test=evaluate(
            test.y, model.decide(scored.test_probs), scored.test_probs, model.targets, test.texts, test.itemids
        ),
        rare_labels=list(manifest.get("rare_labels", [])),
        seconds=scored.seconds,
    )


def is_exclusive(manifest: dict) -> bool:
    """The scheme declared `exclusive: true` (datasets written before the key: no)."""
    return bool((manifest.get("exclusive") or {}).get("declared", False))


def score_on_split(model, data: SplitData, metric: str = "micro_f1", targets: list[str] | None = None) -> float:
    """The promotion metric of a model on a split, with the model's own thresholds. `targets`: the
    split's (gate, labels) when they may differ from the model's (the taxonomy changed since it
    was trained): scored over both, a label the model lacks is never predicted by it, a retired
    one it still predicts has no gold left."""
    probs = model.predict_proba(data.texts)
    fired = model.decide(probs, texts=data.texts)
    names, y = list(model.targets), data.y
    if targets is not None and list(targets) != names:
        names = list(dict.fromkeys([*targets, *model.targets]))
        y, probs, fired = (
            _columns(a, list(t), names) for a, t in ((y, targets), (probs, model.targets), (fired, model.targets))
        )
    result = evaluate(y, fired, probs, names, data.texts, data.itemids)
    if metric not in result.summary:
        raise KeyError(f"unknown metric {metric!r}; one of {sorted(result.summary)}")
    return float(result.summary[metric])


def _columns(a: np.ndarray, names: list[str], wanted: list[str]) -> np.ndarray:
    """`a`'s columns (named `names`) in `wanted` order; zeros where `names` has none."""
    out = np.zeros((a.shape[0], len(wanted)), dtype=a.dtype)
    for j, name in enumerate(wanted):
        if name in names:
            out[:, j] = a[:, names.index(name)]
    return out
