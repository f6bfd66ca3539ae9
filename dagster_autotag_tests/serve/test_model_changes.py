"""The audit log of model changes: concurrent appends, reading back, the DuckDB view, and rollback's refusals
(a real sqlite registry: serve_home)."""

import multiprocessing

import duckdb
import pytest

from dagster_autotag.analytics.views import refresh_views
from dagster_autotag.predict.model_changes import model_changes_path, read_changes, record_change
from dagster_autotag.predict.rollback import rollback_champion
from dagster_autotag_tests.serve.registry import SCHEME


def _append(path: str, k: int) -> None:
    from pathlib import Path

    for i in range(50):
        record_change("p0_newcar", "promotion", "autotag.p0_newcar.linear", str(i), f"writer {k} " + "长" * 500,
                      f"writer {k}", str(i - 1), Path(path))  # fmt: skip


def test_concurrent_writers_never_interleave_and_the_view_shows_every_change(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOTAG_ACTOR", "ops@example")
    lake = tmp_path / "lake"
    path = model_changes_path(lake)
    processes = [multiprocessing.get_context("fork").Process(target=_append, args=(str(path), k)) for k in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    changes = read_changes(path)
    assert len(changes) == 150 and {c.who for c in changes} == {"ops@example"}
    assert sorted(c.source for c in changes) == sorted(f"writer {k}" for k in range(3) for _ in range(50))

    counts = refresh_views(lake, tmp_path / "autotag.duckdb", tracking_uri="sqlite:///" + str(tmp_path / "none.db"),
                           schemes=[])  # fmt: skip
    assert counts["model_changes"] == 150
    with duckdb.connect(str(tmp_path / "autotag.duckdb"), read_only=True) as con:
        row = con.execute("SELECT scheme, action, who, typeof(changed_at) FROM model_changes LIMIT 1").fetchone()
    assert row == ("p0_newcar", "promotion", "ops@example", "TIMESTAMP WITH TIME ZONE")


def test_a_damaged_line_is_an_error_naming_it_not_a_shorter_log(tmp_path):
    path = model_changes_path(tmp_path)
    record_change("p0_newcar", "pin", "m", "1", "why", "test", path=path)
    with path.open("a") as f:
        f.write('{"at": "half a li\n')
    with pytest.raises(ValueError, match="line 2 is not a model change"):
        read_changes(path)
    with pytest.raises(ValueError, match="audit action must be one of"):
        record_change("p0_newcar", "retrain", "m", "1", "why", "test", path=path)


def test_rollback_refuses_without_a_reason_an_unknown_version_or_the_current_champion(serve_home, tmp_path):
    audit = tmp_path / "audit.jsonl"
    with pytest.raises(ValueError, match="needs a reason"):
        rollback_champion(serve_home.uri, SCHEME, "linear", "1", " ", audit)
    with pytest.raises(ValueError, match="has no registered version 99"):
        rollback_champion(serve_home.uri, SCHEME, "linear", "99", "why", audit)
    with pytest.raises(ValueError, match="already the champion"):
        rollback_champion(serve_home.uri, SCHEME, "linear", serve_home.versions["good"], "why", audit)
    assert not audit.exists()
