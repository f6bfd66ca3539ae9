"""What a data engineer sees in dagster-webserver, checked in a real browser."""

import os
from pathlib import Path

import pytest

from dagster_autotag_tests.webserver import browser_page, dagster_webserver, dismiss_welcome_dialog, loaded_location

LOCATION = "dagster_autotag.definitions:defs"  # workspace.yaml: python_module + attribute


@pytest.fixture(scope="module")
def url(demo_home):
    """One dagster-webserver on the demo home for this module; stopped (with its children) after."""
    with dagster_webserver(demo_home.env()) as base:
        dismiss_welcome_dialog(base)
        yield base


def test_label_distribution_chart_renders_in_the_asset_page(url, tmp_path):
    with browser_page() as page:
        page.goto(f"{url}/assets/corpus/label_distribution", wait_until="networkidle")
        page.get_by_text("[Show Markdown]").first.click()  # the `chart` entry comes first
        chart = page.locator("img[alt^='label distribution']")
        chart.wait_for(timeout=20_000)
        assert chart.evaluate("img => img.complete && img.naturalWidth") >= 800  # decoded, not a broken image
        page.screenshot(path=str(tmp_path / "label_distribution.png"))


def test_code_location_and_asset_graph_as_a_data_engineer_sees_them(url, tmp_path):
    from dagster_autotag.definitions import defs

    location = loaded_location(url)
    assert location["assets"] == {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "corpus/items:itemid_unique",
        "predictions/daily_labels:label_drift",
        "raw/news_pool:export_freshness",
    } <= location["checks"]
    assert {
        "ingest_to_publish_nightly",
        "retrain_datasets_and_models_schedule",
        "apply_retention_schedule",
    } <= location["schedules"]
    assert {"ingest_to_publish_landing_sensor", "export_freshness_sensor", "alert_on_run_failure"} <= location[
        "sensors"
    ]
    artifacts = Path(os.environ.get("AUTOTAG_TEST_ARTIFACTS", tmp_path))  # CI can keep the screenshots
    artifacts.mkdir(parents=True, exist_ok=True)
    with browser_page(1800, 1200) as page:
        page.goto(f"{url}/asset-groups", wait_until="networkidle")  # global lineage: one node per group
        for group in ("ingest", "clean", "corpus", "datasets", "models", "predictions", "analytics"):
            page.get_by_text(group, exact=True).first.wait_for(timeout=30_000)
        page.screenshot(path=str(artifacts / "asset_graph.png"))
        page.goto(f"{url}/locations/__repository__@{LOCATION}/asset-groups/corpus", wait_until="networkidle")
        for asset in ("items", "label_distribution"):
            page.get_by_text(asset, exact=True).first.wait_for(timeout=30_000)
        page.screenshot(path=str(artifacts / "corpus_group.png"))
    assert (artifacts / "asset_graph.png").stat().st_size > 20_000
