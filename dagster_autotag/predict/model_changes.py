"""The audit log of which model labels a scheme: every promotion, serving decision that changes the
model, pin and rollback, one JSON line each (who, what, when, why), appended under a file lock.

`<lake>/audit/model_changes.jsonl`: an append-only file rather than a lake partition because
events are rare, come from several processes (Dagster runs, `autotag serve`, `autotag rollback`) and
must never be rewritten. The DuckDB view `model_changes` (analytics/views.py) and the demo summary
read it. Pure: no Dagster, no MLflow.
"""

import fcntl
import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from dagster_autotag.settings import lake_dir

AUDIT_DIR = "audit"
MODEL_CHANGES_FILE = "model_changes.jsonl"
ACTOR_ENV = "AUTOTAG_ACTOR"  # who is acting, when the OS user is not the person (a service account)
ACTIONS = ("promotion", "serving", "pin", "rollback")
COLUMNS = ("changed_at", "scheme", "action", "model", "from_version", "to_version", "who", "source", "why")


@dataclass(frozen=True)
class ModelChange:
    changed_at: str  # ISO 8601, UTC (not `at`: a DuckDB keyword)
    scheme: str
    action: str  # one of ACTIONS
    model: str  # the registered model now labelling (or promoted): autotag.<scheme>.<kind>
    from_version: str | None  # the model before, "<name> v<version>" or a version; None = none before
    to_version: str
    who: str
    source: str  # what made the change: "dagster run <id>", "autotag serve", "autotag rollback", …
    why: str

    def describe(self) -> str:
        before = self.from_version or "none"
        return f"{self.changed_at} {self.scheme} {self.action}: {before} → {self.to_version} by {self.who} ({self.source}): {self.why}"


def model_changes_path(lake: Path | None = None) -> Path:
    """The log of the lake at `lake` (default $AUTOTAG_HOME/lake)."""
    return (lake or lake_dir()) / AUDIT_DIR / MODEL_CHANGES_FILE


def lake_of_dataset(dataset_dir: Path) -> Path:
    """The lake a dataset folder belongs to: datasets always live at <lake>/datasets/<scheme>."""
    return Path(dataset_dir).parent.parent


def actor() -> str:
    """$AUTOTAG_ACTOR, else user@host of this process."""
    named = os.environ.get(ACTOR_ENV, "").strip()
    if named:
        return named
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def record_change(
    scheme: str,
    action: str,
    model: str,
    to_version: str,
    why: str,
    source: str,
    from_version: str | None = None,
    path: Path | None = None,
) -> ModelChange:
    """Appends one event; one write() of one line under an exclusive lock, so concurrent writers never
    interleave and a reader never sees half a line."""
    if action not in ACTIONS:
        raise ValueError(f"audit action must be one of {ACTIONS}, got {action!r}")
    change = ModelChange(
        datetime.now(UTC).isoformat(timespec="seconds"), scheme, action, model,
        None if from_version is None else str(from_version), str(to_version), actor(), source, why,
    )  # fmt: skip
    path = path or model_changes_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(asdict(change), ensure_ascii=False) + "\n").encode("utf-8")
    with open(path, "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return change


def read_changes(path: Path | None = None, scheme: str | None = None) -> list[ModelChange]:
    """Every event (of `scheme`), oldest first. A line that does not parse is an error naming the line:
    an audit log is not silently shortened."""
    path = path or model_changes_path()
    if not path.exists():
        return []
    changes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            change = ModelChange(**{k: json.loads(line)[k] for k in COLUMNS})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} line {number} is not a model change: {exc}") from exc
        if scheme is None or change.scheme == scheme:
            changes.append(change)
    return changes


def export_model_changes(lake: Path, target: Path) -> Path | None:
    """The lake's audit log as Parquet at `target` (for the DuckDB view `model_changes`: a typed table
    without DuckDB's json extension, which offline machines may lack); None while there is no log."""
    import polars as pl

    changes = read_changes(model_changes_path(lake))
    if not changes:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame([asdict(c) for c in changes], schema={c: pl.String for c in COLUMNS})
    frame.with_columns(pl.col("changed_at").str.to_datetime(time_zone="UTC")).write_parquet(target)
    return target
