"""Label drift of a prediction partition against a reference, and input drift of a corpus partition (pure).

Labels are not mutually exclusive, so each label is compared on its own binary distribution
(share, 1 − share), never with one chi-square over all labels. Shares follow corpus/label_distribution:
the gate as a share of all items, a sub-label as a share of gate positives, the all-zero share
(items without any sub-label) of all items, labels per item as a distribution over gate positives.

Distance: Jensen–Shannon distance, base 2 (0 = same, 1 = disjoint), or PSI. A label that disappears
(reference share > 0, current count 0) or appears (the reverse) is an error when the other side
would have expected at least `min_expected` items: a 0.1 % label missing from 800 items is noise.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

OK, WARN, ERROR = "ok", "warn", "error"
SEVERITY_ORDER = (OK, WARN, ERROR)
APPEARED, DISAPPEARED, TOO_FEW = "appeared", "disappeared", "too few items"
PER_ITEM_CAP = 4  # bucket "4+", as in corpus/label_distribution
LENGTH_EDGES = (32, 64, 128, 256, 512)  # text length bins: <32, 32–63, …, ≥512 characters
VIDEO_DTYPE = "yichehao_video"
PSI_EPSILON = 1e-4  # PSI is infinite on an empty bin; the usual fix is a floor on both shares

TABLE_SCHEMA = {
    "metric": pl.String,
    "label": pl.String,
    "reference_share": pl.Float64,
    "current_share": pl.Float64,
    "reference_count": pl.Int64,
    "current_count": pl.Int64,
    "distance": pl.Float64,
    "status": pl.String,
}


@dataclass(frozen=True)
class DriftThresholds:
    warn: float = 0.1
    error: float = 0.2
    metric: str = "js"  # js | psi
    min_expected: float = 5.0  # appear/disappear only when the other side expected this many items
    min_items: int = 30  # below this many items (per denominator) a share is not compared

    def __post_init__(self) -> None:
        if self.metric not in ("js", "psi"):
            raise ValueError(f"drift metric must be 'js' or 'psi', got {self.metric!r}")
        if not 0 <= self.warn <= self.error:
            raise ValueError(f"need 0 ≤ warn ≤ error, got warn={self.warn}, error={self.error}")


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen–Shannon distance (base 2) of two distributions over the same bins (normalised here)."""
    p, q = _normalise(p), _normalise(q)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def psi(p: Sequence[float], q: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of `q` (current) against `p` (reference), natural log."""
    p, q = (np.clip(_normalise(x), epsilon, None) for x in (p, q))
    return float(np.sum((q - p) * np.log(q / p)))


def distance(p: Sequence[float], q: Sequence[float], metric: str = "js") -> float:
    return js_distance(p, q) if metric == "js" else psi(p, q)


def _normalise(x: Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    total = a.sum()
    return a / total if total > 0 else a


def worst(severities: Iterable[str]) -> str:
    return max(severities, key=SEVERITY_ORDER.index, default=OK)


@dataclass(frozen=True)
class LabelProfile:
    """Counts behind the shares of one label set: a prediction partition or a reference split."""

    items: int
    gate: str
    gate_positive: int
    label_counts: dict[str, int]  # sub-labels, counted among gate positives
    all_zero: int  # items with no sub-label
    labels_per_item: dict[str, int]  # gate positives by their number of sub-labels: "0" … "4+"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _bucket(k: int) -> str:
    return f"{PER_ITEM_CAP}+" if k >= PER_ITEM_CAP else str(k)


def label_profile(gate: pl.Series, labels: pl.Series, gate_name: str, sub_labels: Sequence[str]) -> LabelProfile:
    """`gate`: bool per item (null = negative); `labels`: list of label paths per item (the gate
    path may be in it; only `sub_labels` are counted, so unshipped or unknown labels are ignored)."""
    frame = pl.DataFrame({"gate": gate.fill_null(False).cast(pl.Boolean), "labels": labels.fill_null([])})
    wanted = pl.Series(list(sub_labels), dtype=pl.String)
    frame = frame.with_columns(pl.col("labels").list.set_intersection(wanted.implode()).alias("subs"))
    positives = frame.filter("gate")
    counts = dict(positives["subs"].explode(empty_as_null=False).drop_nulls().value_counts().iter_rows())
    per_item = dict(positives["subs"].list.len().clip(upper_bound=PER_ITEM_CAP).value_counts().iter_rows())
    return LabelProfile(
        items=frame.height,
        gate=gate_name,
        gate_positive=positives.height,
        label_counts={label: int(counts.get(label, 0)) for label in sub_labels},
        all_zero=int((frame["subs"].list.len() == 0).sum()),
        labels_per_item={_bucket(k): int(per_item.get(k, 0)) for k in range(PER_ITEM_CAP + 1)},
    )


@dataclass
class DriftResult:
    severity: str
    table: pl.DataFrame  # TABLE_SCHEMA, every compared row
    thresholds: DriftThresholds
    notes: list[str] = field(default_factory=list)

    @property
    def moved(self) -> pl.DataFrame:
        """The rows that crossed a threshold, appeared or disappeared."""
        return self.table.filter(pl.col("status").is_in([WARN, ERROR, APPEARED, DISAPPEARED]))

    def markdown(self, title: str = "") -> str:
        return drift_markdown(self.moved, self.thresholds, self.notes, title)


def drift_markdown(moved: pl.DataFrame, thresholds: DriftThresholds, notes: Sequence[str] = (), title: str = "") -> str:
    head = [f"### {title}"] if title else []
    head.append(f"{thresholds.metric.upper()} distance: warn ≥ {thresholds.warn}, error ≥ {thresholds.error}")
    if notes:
        head.append("\n".join(f"- {n}" for n in notes))
    if moved.is_empty():
        return "\n\n".join(head + ["_no label moved_"])
    extra = [c for c in moved.columns if c not in TABLE_SCHEMA]  # e.g. scheme
    lines = [
        "| " + " | ".join([*extra, "metric", "label", "reference", "current", "distance", "status"]) + " |",
        "|" + "---|" * len(extra) + "---|---|---:|---:|---:|---|",
    ]
    for r in moved.iter_rows(named=True):
        cells = [str(r[c]) for c in extra] + [r["metric"], r["label"], _pct(r["reference_share"])]
        cells += [_pct(r["current_share"]), "" if r["distance"] is None else f"{r['distance']:.3f}", r["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n\n".join(head + ["\n".join(lines)])


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{share:.1%}"


class _Rows:
    """Accumulates comparison rows with their status."""

    def __init__(self, thresholds: DriftThresholds, error_level: str = ERROR) -> None:
        self.t, self.error_level, self.rows = thresholds, error_level, []

    def status(self, d: float | None, appeared: bool = False, disappeared: bool = False) -> str:
        if disappeared:
            return DISAPPEARED
        if appeared:
            return APPEARED
        if d is None:
            return TOO_FEW
        if d >= self.t.error:
            return self.error_level
        return WARN if d >= self.t.warn else OK

    def binary(self, metric: str, label: str, ref: tuple[int, int], cur: tuple[int, int], edges: bool = True):
        """One share compared on (share, 1 − share); ref/cur = (count, denominator)."""
        (rc, rn), (cc, cn) = ref, cur
        rs, cs = (rc / rn if rn else None), (cc / cn if cn else None)
        if min(rn, cn) < self.t.min_items:
            self.add(metric, label, rs, cs, rc, cc, None, TOO_FEW)
            return
        d = distance([rs, 1 - rs], [cs, 1 - cs], self.t.metric)
        gone = edges and rc > 0 and cc == 0 and rs * cn >= self.t.min_expected
        new = edges and rc == 0 and cc > 0 and cs * rn >= self.t.min_expected
        self.add(metric, label, rs, cs, rc, cc, d, self.status(d, new, gone))

    def categorical(self, metric: str, ref: dict[str, int], cur: dict[str, int]) -> None:
        """One distance for the whole distribution, repeated on each bin's row."""
        keys = list(dict.fromkeys([*ref, *cur]))
        rn, cn = sum(ref.values()), sum(cur.values())
        enough = min(rn, cn) >= self.t.min_items
        d = distance([ref.get(k, 0) for k in keys], [cur.get(k, 0) for k in keys], self.t.metric) if enough else None
        for k in keys:
            rc, cc = ref.get(k, 0), cur.get(k, 0)
            # an empty bin on both sides did not move, whatever the distance of the whole
            status = OK if rc == cc == 0 and d is not None else self.status(d)
            self.add(metric, k, rc / rn if rn else None, cc / cn if cn else None, rc, cc, d, status)

    def add(self, metric, label, rs, cs, rc, cc, d, status) -> None:
        self.rows.append((metric, label, rs, cs, rc, cc, d, status))

    def result(self, notes: list[str]) -> DriftResult:
        table = pl.DataFrame(self.rows, schema=TABLE_SCHEMA, orient="row")
        severities = [ERROR if s in (APPEARED, DISAPPEARED) else s for s in table["status"] if s != TOO_FEW]
        return DriftResult(worst(severities), table, self.t, notes)


def label_drift(
    reference: LabelProfile, current: LabelProfile, thresholds: DriftThresholds | None = None
) -> DriftResult:
    """Gate, each sub-label, all-zero share and labels per item of `current` against `reference`."""
    t = thresholds or DriftThresholds()
    rows = _Rows(t)
    rows.binary(
        "gate", current.gate, (reference.gate_positive, reference.items), (current.gate_positive, current.items)
    )
    for label in dict.fromkeys([*reference.label_counts, *current.label_counts]):
        ref = (reference.label_counts.get(label, 0), reference.gate_positive)
        rows.binary("label", label, ref, (current.label_counts.get(label, 0), current.gate_positive))
    zero = (reference.all_zero, reference.items), (current.all_zero, current.items)
    rows.binary("all_zero", "(no sub-label)", *zero, edges=False)
    rows.categorical("labels_per_item", reference.labels_per_item, current.labels_per_item)
    notes = [f"reference {reference.items:,} items, current {current.items:,} items"]
    return rows.result(notes)


def length_bins(text: pl.Series) -> dict[str, int]:
    lengths = text.fill_null("").str.len_chars()
    names = [f"<{LENGTH_EDGES[0]}"] + [f"{a}–{b - 1}" for a, b in zip(LENGTH_EDGES, LENGTH_EDGES[1:])]
    names.append(f"≥{LENGTH_EDGES[-1]}")
    index = np.searchsorted(np.array(LENGTH_EDGES), lengths.to_numpy(), side="right")
    counts = np.bincount(index, minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts)}


def input_drift(
    reference_corpus: pl.DataFrame, current_corpus: pl.DataFrame, thresholds: DriftThresholds | None = None
) -> DriftResult:
    """corpus/items of a day against reference days: text length (binned characters of the model
    input), dtype mix, ASR and OCR coverage of videos. WARN at most: inputs shift for many
    harmless reasons (a holiday, an editorial campaign); label drift decides what blocks."""
    t = thresholds or DriftThresholds()
    rows = _Rows(t, error_level=WARN)
    rows.categorical("text_length", length_bins(reference_corpus["text"]), length_bins(current_corpus["text"]))
    ref_dtypes = dict(reference_corpus["dtype"].value_counts(sort=True).iter_rows())
    cur_dtypes = dict(current_corpus["dtype"].value_counts(sort=True).iter_rows())
    rows.categorical("dtype", ref_dtypes, cur_dtypes)
    ref_videos = reference_corpus.filter(pl.col("dtype") == VIDEO_DTYPE)
    cur_videos = current_corpus.filter(pl.col("dtype") == VIDEO_DTYPE)
    for column in ("has_asr", "has_ocr"):
        if column in reference_corpus.columns and column in current_corpus.columns:
            ref = (int(ref_videos[column].sum()), ref_videos.height)
            rows.binary(
                column.replace("has_", "") + "_coverage",
                "videos",
                ref,
                (int(cur_videos[column].sum()), cur_videos.height),
                edges=False,
            )
    notes = [f"reference {reference_corpus.height:,} items, current {current_corpus.height:,} items"]
    return rows.result(notes)
