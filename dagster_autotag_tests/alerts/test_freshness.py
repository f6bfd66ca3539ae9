"""When a day's exports count as late: WARN after the first deadline, ERROR after the second."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dagster_autotag.alerts.freshness import ERROR, WARN, FreshnessRule, judge, watched_day

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULE = FreshnessRule(warn_after_hours=3, error_after_hours=6)


def at(day: str, hour: float) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=SHANGHAI) + timedelta(hours=hour)


@pytest.mark.parametrize(
    ("now", "severity", "late"),
    [
        (at("2024-05-02", 2.5), None, 0.0),  # not due yet
        (at("2024-05-02", 3.0), WARN, 0.0),
        (at("2024-05-02", 5.5), WARN, 2.5),
        (at("2024-05-02", 6.0), ERROR, 3.0),
        (at("2024-05-03", 1.0), ERROR, 22.0),
    ],
)
def test_a_missing_day_is_warn_then_error(now, severity, late):
    verdict = judge("2024-05-01", None, now, RULE)
    assert (verdict.severity, verdict.late_hours, verdict.passed) == (severity, late, severity is None)


def test_an_arrived_day_passes_and_says_how_late_it_came():
    on_time = judge("2024-05-01", at("2024-05-02", 1.0), at("2024-05-02", 9.0), RULE)
    late = judge("2024-05-01", at("2024-05-02", 7.5), at("2024-05-02", 9.0), RULE)
    assert on_time.passed and on_time.late_hours == 0 and "after the deadline" not in on_time.describe()
    assert late.passed and late.late_hours == 4.5 and "4.5 h after the deadline" in late.describe()


def test_the_watched_day_is_the_newest_whose_warn_deadline_passed():
    assert watched_day(at("2024-05-02", 2.9), RULE) == "2024-04-30"
    assert watched_day(at("2024-05-02", 3.0), RULE) == "2024-05-01"
    assert watched_day(at("2024-05-02", 23.0).astimezone(UTC), RULE) == "2024-05-01"  # any timezone in
    assert watched_day(at("2024-05-03", 0.5), FreshnessRule(0, 0)) == "2024-05-02"


def test_rules_come_from_the_environment_and_must_be_ordered(monkeypatch):
    monkeypatch.setenv("AUTOTAG_FRESHNESS_WARN_HOURS", "1.5")
    monkeypatch.setenv("AUTOTAG_FRESHNESS_ERROR_HOURS", "30")
    assert FreshnessRule.from_env() == FreshnessRule(1.5, 30)
    monkeypatch.setenv("AUTOTAG_FRESHNESS_ERROR_HOURS", "1")
    with pytest.raises(ValueError, match="warn ≤ error"):
        FreshnessRule.from_env()
    monkeypatch.setenv("AUTOTAG_FRESHNESS_ERROR_HOURS", "soon")
    with pytest.raises(ValueError, match="AUTOTAG_FRESHNESS_ERROR_HOURS must be a number"):
        FreshnessRule.from_env()
