"""Generated days shared by the sample tests (generated once per session: they are pure data)."""

import pytest

from dagster_autotag.sample.generator import DayExport, generate_day

DT = "2024-05-01"
ITEMS = 3000


@pytest.fixture(scope="session")
def dirty_day() -> DayExport:
    return generate_day(DT, items=ITEMS, seed=7, dirt=True)


@pytest.fixture(scope="session")
def clean_day() -> DayExport:
    return generate_day(DT, items=ITEMS, seed=7, dirt=False)
