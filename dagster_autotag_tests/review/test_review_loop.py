"""The review loop against a real Label Studio, on a copy of the demo home: push a day's tasks,
annotate them through Label Studio's API as a reviewer does, pull the corrections, and see the
dataset row change; a server that is down fails clearly and writes nothing.

The tests share one Label Studio and one copy of the demo home, in file order: the first pushes the
tasks the others annotate and pull."""

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from PIL import Image

from dagster_autotag.corpus.assets import build_dataset_asset
from dagster_autotag.corpus.config import load_corpus_config
from dagster_autotag.resources import LabelStudioResource, LakeResource, MlflowResource
from dagster_autotag.review.assets import build_review_assets
from dagster_autotag.review.label_studio import LabelStudio
from dagster_autotag.review.tasks import choices_result, project_title
from dagster_autotag_tests.demo_home import DEMO_DAYS, tracking_uri
from dagster_autotag_tests.label_studio_server import PASSWORD, USER, free_port, login
from dagster_autotag_tests.webserver import browser_page

DAY = DEMO_DAYS[-1]
SCHEME = "p0_newcar"
GATE = "新车资讯"
DOCS = Path(__file__).resolve().parents[2] / "docs"
OPTIONS = {"audit_per_label": 3, "hard_max_items": 4, "label_issues_per_day": 2}


@pytest.fixture(scope="module")
def home(demo_home, tmp_path_factory):
    home = tmp_path_factory.mktemp("review") / "home"
    shutil.copytree(demo_home.path, home, ignore=shutil.ignore_patterns("dagster", "landing", "published"))
    return home


@pytest.fixture(scope="module")
def token_env(label_studio):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AUTOTAG_LABEL_STUDIO_TOKEN", label_studio.token)
        yield


def materialize(home: Path, url: str, key: str, config: dict | None = None, partition: str | None = None):
    scheme = load_corpus_config().scheme(SCHEME)
    assets = [*build_review_assets([scheme]), build_dataset_asset(scheme)]
    selected = next(a for a in assets if a.key.to_user_string() == key)
    op = selected.op.name
    return dg.materialize(
        [selected],
        partition_key=partition,
        resources={
            "lake": LakeResource(home=str(home)),
            "mlflow": MlflowResource(tracking_uri=tracking_uri(home)),
            "label_studio": LabelStudioResource(url=url),
        },
        run_config={"ops": {op: {"config": config or {}}}},
        raise_on_error=False,
    )


def tasks_in(home: Path) -> pl.DataFrame:
    return pl.read_parquet(home / f"lake/review/tasks/dt={DAY}/part-0.parquet")


def test_tasks_are_pushed_once_with_the_prediction_pre_filled(home, label_studio, token_env):
    result = materialize(home, label_studio.url, "review/tasks", OPTIONS, DAY)
    assert result.success, result.all_events
    table = tasks_in(home)
    assert set(table["stream"]) == {"audit", "hard"} and table["task_id"].is_not_null().all()
    assert table["itemid"].is_unique().all()
    client = LabelStudio(label_studio.url, label_studio.token)
    project = client.find_project(project_title(SCHEME))
    in_ls = {t["id"]: t for t in client.tasks(project)}
    assert set(in_ls) == set(table["task_id"])
    for page_size in (5, len(in_ls)):  # page by page, up to an exactly full last page
        with pytest.MonkeyPatch.context() as env:
            env.setattr("dagster_autotag.review.label_studio.PAGE_SIZE", page_size)
            assert sorted(t["id"] for t in client.tasks(project)) == sorted(in_ls)
    row = table.filter(pl.col("stream") == "audit").row(0, named=True)
    task = in_ls[row["task_id"]]
    assert task["data"]["itemid"] == row["itemid"] and task["data"]["stream"] == "audit"
    assert task["predictions"][0]["result"] == choices_result(row["predicted"])

    again = materialize(home, label_studio.url, "review/tasks", OPTIONS, DAY)  # a re-run sends nothing new
    assert again.success
    assert (
        tasks_in(home)
        .sort("itemid")
        .select("itemid", "task_id")
        .equals(table.sort("itemid").select("itemid", "task_id"))
    )
    assert len(client.tasks(project)) == len(in_ls)


def test_reviewer_corrections_reach_the_lake_once_and_change_the_dataset_row(home, label_studio, token_env):
    table = tasks_in(home)
    train = pl.read_parquet(home / f"lake/datasets/{SCHEME}/train.parquet")
    manifest = json.loads((home / f"lake/datasets/{SCHEME}/manifest.json").read_text(encoding="utf-8"))
    # an item of the day that is in the training split with the gate on: the reviewer says it is not 新车资讯
    target = table.join(train.filter(pl.col("gate") & (pl.col("copy") == 0)), on="itemid").row(0, named=True)
    reviewer = login(label_studio.url)  # as a reviewer in the browser: session + CSRF, not the script token
    answer = reviewer.post(
        f"{label_studio.url}/api/tasks/{target['task_id']}/annotations/", json={"result": choices_result([])}
    )
    assert answer.status_code == 201, answer.text
    client = LabelStudio(label_studio.url, label_studio.token)
    others = table.filter(pl.col("itemid") != target["itemid"]).head(2)
    for task_id, predicted in others.select("task_id", "predicted").iter_rows():
        client.annotate(task_id, choices_result(predicted))  # accepted as pre-filled

    pulled = materialize(home, label_studio.url, "review/corrections")
    assert pulled.success
    corrections = pl.read_parquet(home / "lake/review/corrections/corrections.parquet")
    assert corrections.height == 3 and corrections["annotation_id"].is_unique().all()
    mine = corrections.filter(pl.col("itemid") == target["itemid"]).row(0, named=True)
    assert mine["labels"] == [] and mine["annotator"] == USER and mine["scheme"] == SCHEME and mine["dt"] == DAY
    annotated = table.filter(pl.col("itemid").is_in(corrections["itemid"].implode()) & (pl.col("stream") == "audit"))
    audit = pl.read_parquet(home / "lake/review/corrections/audited_precision.parquet")
    assert audit["audited"].sum() == annotated["audit_labels"].list.len().sum()  # each audited label counted once
    again = materialize(home, label_studio.url, "review/corrections")  # idempotent: nothing counted twice
    meta = again.asset_materializations_for_node("review__corrections")[0].metadata
    assert meta["added"].value == 0 and meta["unchanged"].value == 3
    assert pl.read_parquet(home / "lake/review/corrections/corrections.parquet").equals(corrections)

    built = materialize(home, label_studio.url, f"datasets/{SCHEME}", {"window_days": 90})
    assert built.success
    rows = pl.concat(
        pl.read_parquet(home / f"lake/datasets/{SCHEME}/{s}.parquet") for s in ("train", "dev", "test")
    ).filter((pl.col("itemid") == target["itemid"]) & (pl.col("copy") == 0))
    assert rows.height == 1 and rows["gate"].to_list() == [False] and rows["labels"].to_list() == [[]]
    new_manifest = json.loads((home / f"lake/datasets/{SCHEME}/manifest.json").read_text(encoding="utf-8"))
    assert manifest.get("review_corrections", 0) == 0 and new_manifest["review_corrections"] == 3

    off = materialize(
        home, label_studio.url, f"datasets/{SCHEME}", {"window_days": 90, "apply_review_corrections": False}
    )
    assert off.success
    assert (
        json.loads((home / f"lake/datasets/{SCHEME}/manifest.json").read_text(encoding="utf-8"))["review_corrections"]
        == 0
    )


def test_a_server_that_is_down_fails_clearly_and_writes_nothing(home, label_studio, token_env, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    day = DEMO_DAYS[0]
    result = materialize(home, down, "review/tasks", OPTIONS, day)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error_display_string
    assert f"Label Studio at {down} is not reachable" in message and label_studio.token not in message
    assert not (home / f"lake/review/tasks/dt={day}").exists()
    before = (home / "lake/review/corrections/corrections.parquet").read_bytes()
    assert not materialize(home, down, "review/corrections").success
    assert (home / "lake/review/corrections/corrections.parquet").read_bytes() == before

    with pytest.MonkeyPatch.context() as env:  # a wrong token: refused, and not echoed
        env.setenv("AUTOTAG_LABEL_STUDIO_TOKEN", "not-a-real-token-1234")
        refused = materialize(home, label_studio.url, "review/tasks", OPTIONS, day)
    assert not refused.success and not (home / f"lake/review/tasks/dt={day}").exists()
    text = next(
        e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"
    ).event_specific_data.error_display_string
    assert "HTTP 401" in text and "not-a-real-token-1234" not in text


def test_screenshot_of_a_review_task_in_label_studio(home, label_studio, tmp_path):
    """A task as the reviewer sees it (text, boxes, pre-filled); AUTOTAG_UPDATE_DOCS=1 writes it to
    docs/review_task.png, the README's picture."""
    hard = tasks_in(home).filter(pl.col("stream") == "hard")
    row = hard.sort(pl.col("predicted").list.len(), "itemid", descending=[True, False]).row(0, named=True)
    assert row["predicted"], "a hard case with pre-filled labels"
    project = LabelStudio(label_studio.url, label_studio.token).find_project(project_title(SCHEME))
    with browser_page(1280, 800) as page:
        page.goto(f"{label_studio.url}/user/login/")
        page.fill("input[name=email]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/user/login" not in url, timeout=30_000)
        page.goto(f"{label_studio.url}/projects/{project}/data?task={row['task_id']}", wait_until="networkidle")
        page.get_by_role("button", name="Submit").wait_for(timeout=30_000)
        page.get_by_text(row["reasons"][0]).first.wait_for(timeout=30_000)  # the header: stream and reasons
        checked = page.locator("input[type=checkbox]:checked")  # the model's labels, pre-ticked
        checked.nth(len(row["predicted"]) - 1).wait_for(state="attached", timeout=30_000)
        assert checked.count() == len(row["predicted"])
        page.wait_for_timeout(500)
        out = (
            DOCS
            if os.environ.get("AUTOTAG_UPDATE_DOCS") == "1"
            else Path(os.environ.get("AUTOTAG_TEST_ARTIFACTS", tmp_path))
        )
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / "review_task.png"))
    assert (out / "review_task.png").stat().st_size > 20_000
    with Image.open(out / "review_task.png") as shot:  # 256 colours: a third of the bytes, same picture
        shot.convert("RGB").quantize(256).save(out / "review_task.png", optimize=True)


def test_the_sensor_requests_a_pull_once_per_new_annotation_state(home, label_studio, token_env):
    from dagster_autotag.automation.review_sensor import build_review_sensor

    sensor = build_review_sensor("pull_review_corrections")
    with dg.instance_for_test() as instance:

        def tick(url: str, cursor: str | None):
            resources = {"label_studio": LabelStudioResource(url=url)}
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
                return sensor(context)

        first = tick(label_studio.url, None)  # the earlier test left annotations: one pull
        assert len(first.run_requests) == 1
        assert tick(label_studio.url, first.cursor).skip_reason  # nothing new since
        task_id = tasks_in(home).filter(pl.col("stream") == "audit")["task_id"][-1]
        client = LabelStudio(label_studio.url, label_studio.token)
        annotation = client.annotate(task_id, choices_result([GATE]))
        second = tick(label_studio.url, first.cursor)
        assert len(second.run_requests) == 1 and second.run_requests[0].run_key != first.run_requests[0].run_key
        assert tick(label_studio.url, second.cursor).skip_reason
        # a reviewer changes their mind: no count moves, the edit is pulled all the same
        edited = client.request("PATCH", f"/api/annotations/{annotation}/", json={"result": choices_result([])})
        assert edited.status_code == 200
        third = tick(label_studio.url, second.cursor)
        assert len(third.run_requests) == 1 and third.run_requests[0].run_key != second.run_requests[0].run_key
        down = tick(f"http://127.0.0.1:{free_port()}", third.cursor)
        assert "not reachable" in str(down.skip_reason) and down.cursor == third.cursor
