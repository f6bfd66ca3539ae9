"""A sensor on Label Studio: one run of the corrections job whenever reviewers submitted or skipped
annotations since the last pull.

Each tick asks Label Studio for the review projects (`autotag <scheme>`), their annotation counts
and the time their most recently updated task changed; the cursor holds that state as last
requested, the run key the same state, so one state is pulled once. An annotation edited in place
changes no count but moves its task's `updated_at` (Label Studio 1.23), so an edit is pulled too
(the pull is a full export, upserted by annotation id). Tasks pushed by review/tasks move it as
well: one extra, idempotent pull. Label Studio down → a skip with its message.
"""

import json

import dagster as dg

from dagster_autotag.resources import LabelStudioResource
from dagster_autotag.review.label_studio import LabelStudioError
from dagster_autotag.review.tasks import project_title

COUNT_FIELDS = ("total_annotations_number", "skipped_annotations_number")
LATEST_FIRST = {"ordering": ["-tasks:updated_at"]}  # Label Studio's data-manager ordering of /api/tasks/


def review_state(client) -> dict[str, list]:
    """project title → [annotations, skipped, latest task update], for the review projects."""
    prefix = project_title("")
    projects = client.json("GET", "/api/projects/", params={"page_size": 1000})
    rows = projects["results"] if isinstance(projects, dict) else projects
    return {
        p["title"]: [*(int(p.get(f) or 0) for f in COUNT_FIELDS), latest_task_update(client, p["id"])]
        for p in rows
        if p["title"].startswith(prefix)
    }


def latest_task_update(client, project: int) -> str:
    """`updated_at` of the project's most recently updated task ("" when it has none)."""
    params = {"project": project, "page_size": 1, "fields": "task_only", "query": json.dumps(LATEST_FIRST)}
    page = client.json("GET", "/api/tasks/", params=params)
    tasks = page.get("tasks", []) if isinstance(page, dict) else page
    return str(tasks[0].get("updated_at") or "") if tasks else ""


def build_review_sensor(job_name: str, minimum_interval_seconds: int = 300) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{job_name}_sensor",
        job_name=job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        description=f"Requests {job_name} when the review projects in Label Studio have new annotations.",
    )
    def review_sensor(context: dg.SensorEvaluationContext, label_studio: LabelStudioResource) -> dg.SensorResult:
        try:
            state = review_state(label_studio.client())
        except LabelStudioError as exc:
            return dg.SensorResult(skip_reason=str(exc), cursor=context.cursor)
        cursor = json.dumps(state, sort_keys=True, ensure_ascii=False)
        if cursor == (context.cursor or json.dumps({})) or not any(sum(v[: len(COUNT_FIELDS)]) for v in state.values()):
            return dg.SensorResult(skip_reason="no new annotations in Label Studio", cursor=cursor)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=cursor, tags={"autotag/trigger": "review_sensor"})], cursor=cursor
        )

    return review_sensor
