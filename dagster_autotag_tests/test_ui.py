"""What a data engineer sees in dagster-webserver, checked in a real browser."""

from dagster_autotag_tests.webserver import browser_page, dagster_webserver, dismiss_welcome_dialog


def test_label_distribution_chart_renders_in_the_asset_page(demo_home, tmp_path):
    with dagster_webserver(demo_home.env()) as url, browser_page() as page:
        dismiss_welcome_dialog(url)
        page.goto(f"{url}/assets/corpus/label_distribution", wait_until="networkidle")
        page.get_by_text("[Show Markdown]").first.click()  # the `chart` entry comes first
        chart = page.locator("img[alt^='label distribution']")
        chart.wait_for(timeout=20_000)
        assert chart.evaluate("img => img.complete && img.naturalWidth") >= 800  # decoded, not a broken image
        page.screenshot(path=str(tmp_path / "label_distribution.png"))
