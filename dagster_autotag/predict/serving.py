"""Which model serves a scheme's daily predictions: every kind's champion scored on the same current test
split, the best by the promotion metric within the scheme's inference budget (pure: no Dagster, no
MLflow; predict/champion.py measures the champions and reads and writes the registry).

- Cost is seconds of inference per 100k items, measured on the machine that decides, the way the daily
  run predicts (batch.score_and_decide). A kind over the budget is not chosen however well it scores:
  BERT on CPU costs ~100 min per 100k items.
- Scores within TIE_TOLERANCE of the best are a tie; it goes to the cheaper kind (KIND_COST).
- A run may pin a kind or a version ("linear", "linear:3"); the pin wins and is reported as pinned.
- The decision is kept as registry tags (ServingRecord.to_tags) and holds while every kind's champion,
  the budget and the device it was measured on stay the same (ServingRecord.stale_because).
"""

import importlib.util
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from dagster_autotag.predict.batch import score_and_decide

KIND_COST = ("linear", "textcnn", "knn", "bert", "ensemble")  # cheapest first; other kinds rank after these
TIE_TOLERANCE = 1e-4
TAG_PREFIX = "serving."
TAG_VALUE_MAX = 5000  # MLflow's SQL stores keep registered-model tag values in VARCHAR(5000)


class ServingError(ValueError):
    """No model may serve: nothing within the budget, nothing scored, or a pin that names no model."""


@dataclass(frozen=True)
class Speed:
    items: int
    seconds: float

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else math.inf

    @property
    def seconds_per_100k(self) -> float:
        return 100_000 * self.seconds / self.items

    def metrics(self) -> dict[str, float]:
        """As logged to a training run (MLflow metrics)."""
        return {
            "inference.items_per_s": self.items_per_s,
            "inference.seconds_per_100k": self.seconds_per_100k,
            "inference.items_timed": float(self.items),
        }


def measure_speed(
    model, texts: Sequence[str], max_items: int = 2000, max_seconds: float = 10.0, warmup: int = 16
) -> Speed | None:
    """Seconds that score_and_decide (the daily run's work per batch) takes over up to `max_items` texts,
    after one untimed warm-up batch (lazy initialisation). Batches double from 32 to 1024 texts, cycling
    through `texts` when they are fewer; timing stops after `max_seconds`, so a slow model (BERT on CPU)
    costs seconds to measure, not minutes. None without texts."""
    texts = [t or "" for t in texts]
    if not texts:
        return None
    score_and_decide(model, texts[:warmup])
    pool = texts[warmup:] or texts
    done, seconds, size, start = 0, 0.0, 32, 0
    while done == 0 or (done < max_items and seconds < max_seconds):  # one batch at least
        n = min(size, max_items - done)
        batch = [pool[(start + k) % len(pool)] for k in range(n)]
        started = time.perf_counter()
        score_and_decide(model, batch)
        seconds += time.perf_counter() - started
        done, start, size = done + n, (start + n) % len(pool), min(size * 2, 1024)
    return Speed(done, seconds)


def inference_device() -> str:
    """What inference runs on here: the factor that moves a kind's cost most (BERT uses a GPU when
    torch sees one). "cuda (<name>)" or "cpu"."""
    if importlib.util.find_spec("torch") is None:
        return "cpu"
    import torch

    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def cost_rank(kind: str) -> int:
    return KIND_COST.index(kind) if kind in KIND_COST else len(KIND_COST)


def parse_pin(pin: str) -> tuple[str, str | None]:
    """ "linear" → ("linear", None): that kind's champion; "linear:3" → ("linear", "3"): that version."""
    kind, colon, version = (part.strip() for part in pin.partition(":"))
    if not kind or (colon and not version.isdigit()):
        raise ServingError(f"a pin is 'kind' or 'kind:version' (e.g. linear or linear:3), got {pin!r}")
    return kind, version or None


@dataclass(frozen=True)
class Candidate:
    kind: str
    name: str  # registered model, autotag.<scheme>.<kind>
    version: str
    run_id: str
    score: float | None = None  # the metric on the current test split; None = not scored
    seconds_per_100k: float | None = None  # measured inference cost; None = unknown
    recorded_score: float | None = None  # the metric its training run logged, on that run's test split
    note: str = ""  # why it was not scored, …

    def describe(self) -> str:
        return f"{self.name} v{self.version}"


def within_budget(candidate: Candidate, budget_s_per_100k: float | None) -> bool:
    """Unknown speed counts as within (flagged in the row): refusing every unmeasured model would stop
    the daily run over a missing figure; measuring is the caller's job, and it always measures."""
    cost = candidate.seconds_per_100k
    return budget_s_per_100k is None or cost is None or cost <= budget_s_per_100k


@dataclass(frozen=True)
class ServingDecision:
    scheme: str
    chosen: Candidate
    reason: str
    metric: str
    budget_s_per_100k: float | None
    rows: tuple[dict, ...]  # every candidate: kind, model, version, scores, cost, within_budget, chosen, note
    pinned: bool = False


def choose_serving(
    scheme: str,
    candidates: Sequence[Candidate],
    metric: str,
    budget_s_per_100k: float | None,
    pin: str | None = None,
    tie_tolerance: float = TIE_TOLERANCE,
) -> ServingDecision:
    """The best scored candidate within the budget, ties to the cheaper kind; or the pinned one.
    Raises ServingError when none qualifies, naming every candidate's score and cost."""
    if not candidates:
        raise ServingError(f"{scheme}: no model to choose from")
    budget = budget_s_per_100k
    if pin is not None:
        kind, version = parse_pin(pin)
        matches = [c for c in candidates if c.kind == kind and version in (None, c.version)]
        if not matches:
            have = ", ".join(c.describe() for c in candidates)
            raise ServingError(f"{scheme}: the pin {pin!r} names none of {have}")
        chosen = matches[0]
        reason = f"{chosen.describe()}: pinned by run config ({pin}), not chosen by measurement"
        if not within_budget(chosen, budget):
            reason += f"; over the budget ({chosen.seconds_per_100k:,.0f} > {budget:,.0f} s per 100k items)"
        notes = {c: ("pinned" if c is chosen else "not pinned") for c in candidates}
        return ServingDecision(scheme, chosen, reason, metric, budget, _rows(candidates, chosen, notes, budget), True)

    eligible = [c for c in candidates if c.score is not None and within_budget(c, budget)]
    if not eligible:
        table = "; ".join(
            f"{c.describe()}: {_score_text(c.score)}, {_cost_text(c)}" + (f" ({c.note})" if c.note else "")
            for c in candidates
        )
        limit = f"{budget:,.0f} s per 100k items" if budget is not None else "none"
        raise ServingError(
            f"{scheme}: no model may serve: none was scored within the inference budget ({limit}): {table}. "
            "Raise inference_budget_s_per_100k for the scheme (corpus.yaml, or the prediction run config), "
            "or pin a model in the run config (model_kinds / model_versions)"
        )
    best = max(c.score for c in eligible)
    tied = [c for c in eligible if best - c.score <= tie_tolerance]
    chosen = min(
        tied, key=lambda c: (cost_rank(c.kind), math.inf if c.seconds_per_100k is None else c.seconds_per_100k)
    )
    notes = {}
    for c in candidates:
        if c is chosen:
            notes[c] = "serving" + ("; speed unknown" if c.seconds_per_100k is None else "")
        elif c.score is None:
            notes[c] = c.note or "not scored"
        elif not within_budget(c, budget):
            notes[c] = f"over budget ({c.seconds_per_100k:,.0f} > {budget:,.0f} s per 100k items)"
        elif c in tied:
            notes[c] = f"tied with {chosen.kind} (within {tie_tolerance:g}): the cheaper kind serves"
        else:
            notes[c] = f"lower {metric}"
    return ServingDecision(
        scheme, chosen, _reason(chosen, candidates, tied, metric, budget), metric, budget,
        _rows(candidates, chosen, notes, budget),
    )  # fmt: skip


def _reason(chosen: Candidate, candidates, tied, metric: str, budget: float | None) -> str:
    others = sorted(
        (c for c in candidates if c is not chosen and c.score is not None and c not in tied), key=lambda c: -c.score
    )
    parts = [f"{chosen.describe()}: best {metric} on the current test split ({chosen.score:.4f})"]
    if len(tied) > 1:
        names = ", ".join(f"{c.kind} {c.score:.4f}" for c in tied if c is not chosen)
        parts[0] += f", tied with {names}: the cheaper kind serves"
    if others:
        parts.append("compared with " + ", ".join(f"{c.kind} {c.score:.4f}" for c in others))
    cost = "speed unknown" if chosen.seconds_per_100k is None else f"{chosen.seconds_per_100k:,.1f} s per 100k items"
    parts.append(cost + (f", within the budget of {budget:,.0f} s" if budget is not None else ", no budget"))
    over = [c for c in candidates if not within_budget(c, budget)]
    if over:
        parts.append("over budget: " + ", ".join(f"{c.kind} ({c.seconds_per_100k:,.0f} s)" for c in over))
    failed = [c for c in candidates if c.score is None and within_budget(c, budget)]
    if failed:
        parts.append("not scored: " + ", ".join(f"{c.kind} ({c.note or 'no score'})" for c in failed))
    return "; ".join(parts)


def _rows(candidates, chosen: Candidate, notes: dict, budget: float | None) -> tuple[dict, ...]:
    return tuple(
        {
            "kind": c.kind,
            "model": c.name,
            "version": c.version,
            "run_id": c.run_id,
            "score": c.score,
            "recorded_score": c.recorded_score,
            "seconds_per_100k": c.seconds_per_100k,
            "within_budget": within_budget(c, budget),
            "chosen": c is chosen,
            "note": notes.get(c, ""),
        }
        for c in sorted(candidates, key=lambda c: (cost_rank(c.kind), c.kind, c.version))
    )


def _score_text(score: float | None) -> str:
    return "not scored" if score is None else f"{score:.4f}"


def _cost_text(c: Candidate) -> str:
    return "speed unknown" if c.seconds_per_100k is None else f"{c.seconds_per_100k:,.0f} s per 100k items"


@dataclass(frozen=True)
class ServingRecord:
    """A decision as kept in the registry (tags `serving.*` of the versionless model autotag.<scheme>),
    with what it was decided on: the champion version of every kind, the device, the budget."""

    scheme: str
    kind: str
    name: str
    version: str
    run_id: str
    reason: str
    metric: str
    budget_s_per_100k: float | None
    champions: dict[str, str]  # kind → champion version when decided
    device: str
    decided_at: str  # ISO 8601, UTC
    dataset: str = ""  # the test split scored: path and window
    rows: list[dict] = field(default_factory=list)
    pinned: bool = False

    @classmethod
    def of(
        cls, decision: ServingDecision, champions: Mapping[str, str], device: str, decided_at: str, dataset: str = ""
    ) -> "ServingRecord":
        c = decision.chosen
        return cls(
            decision.scheme, c.kind, c.name, c.version, c.run_id, decision.reason, decision.metric,
            decision.budget_s_per_100k, dict(champions), device, decided_at, dataset, [dict(r) for r in decision.rows],
            decision.pinned,
        )  # fmt: skip

    def describe(self) -> str:
        return f"{self.name} v{self.version}"

    def to_tags(self) -> dict[str, str]:
        """`serving.champions` comes last: a writer stopped half-way leaves the old champions next to
        the new choice, which then reads as stale (see stale_because) and is decided again."""
        budget = "none" if self.budget_s_per_100k is None else repr(self.budget_s_per_100k)
        tags = {
            "kind": self.kind,
            "model": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "reason": self.reason,
            "metric": self.metric,
            "budget_s_per_100k": budget,
            "device": self.device,
            "decided_at": self.decided_at,
            "dataset": self.dataset,
            "scores": json.dumps(self.rows, ensure_ascii=False),
            "champions": json.dumps(self.champions, sort_keys=True),
        }
        return {f"{TAG_PREFIX}{k}": v[:TAG_VALUE_MAX] for k, v in tags.items()}

    @classmethod
    def from_tags(cls, scheme: str, tags: Mapping[str, str]) -> "ServingRecord | None":
        """None when the tags hold no (readable) decision."""
        t = {k.removeprefix(TAG_PREFIX): v for k, v in tags.items() if k.startswith(TAG_PREFIX)}
        try:
            budget = None if t["budget_s_per_100k"] == "none" else float(t["budget_s_per_100k"])
            return cls(
                scheme, t["kind"], t["model"], t["version"], t["run_id"], t["reason"], t["metric"], budget,
                json.loads(t["champions"]), t["device"], t["decided_at"], t.get("dataset", ""),
                json.loads(t.get("scores", "[]")),
            )  # fmt: skip
        except (KeyError, ValueError):
            return None

    def stale_because(self, champions: Mapping[str, str], device: str, budget_s_per_100k: float | None) -> str | None:
        """Why this decision no longer holds, or None: a kind's champion moved (or a kind appeared or
        went), the recorded choice is no longer its kind's champion, the device or the budget changed."""
        moved = [
            f"{kind} {_version(self.champions.get(kind))} → {_version(champions.get(kind))}"
            for kind in sorted(set(self.champions) | set(champions))
            if self.champions.get(kind) != champions.get(kind)
        ]
        if moved:
            return "champions moved: " + ", ".join(moved)
        if champions.get(self.kind) != self.version:
            return f"{self.describe()} is not the {self.kind} champion"
        if device != self.device:
            return f"decided on {self.device}, predicting on {device}"
        if budget_s_per_100k != self.budget_s_per_100k:
            return f"budget {_budget(self.budget_s_per_100k)} → {_budget(budget_s_per_100k)} s per 100k items"
        return None

    def markdown(self) -> str:
        """The decision and the table of every candidate compared (asset metadata)."""
        metric = self.metric
        lines = [
            self.reason,
            "",
            f"budget {_budget(self.budget_s_per_100k)} s per 100k items · measured on {self.device} · "
            f"decided {self.decided_at}" + (f" · test split {self.dataset}" if self.dataset else ""),
            "",
            f"| kind | version | {metric} now | {metric} at training | s / 100k items | within budget | serving "
            "| note |",
            "|---|---:|---:|---:|---:|---|---|---|",
        ]
        for r in self.rows:
            cost = "unknown" if r["seconds_per_100k"] is None else f"{r['seconds_per_100k']:,.1f}"
            lines.append(
                f"| {r['kind']} | {r['version']} | {_score_text(r['score'])} | {_score_text(r['recorded_score'])} | "
                f"{cost} | {'✅' if r['within_budget'] else '❌'} | {'✅' if r['chosen'] else ''} | {r['note']} |"
            )
        return "\n".join(lines)

    def to_json(self) -> dict:
        return asdict(self)


def _version(version: str | None) -> str:
    return "none" if version is None else f"v{version}"


def _budget(budget: float | None) -> str:
    return "no" if budget is None else f"{budget:,.0f}"
