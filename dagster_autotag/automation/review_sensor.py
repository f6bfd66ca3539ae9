"""A sensor on Label Studio: one run of the corrections job whenever reviewers submitted or skipped
annotations since the last pull.

Each tick asks Label Studio for the review projects (`autotag <scheme>`) and their annotation counts;
the cursor holds the counts last requested, the run key the same counts, so one state is pulled once.
An annotation edited in place changes no count: the next new annotation's pull brings the edit too
(the pull is a full export, upserted by annotation id). Label Studio down → a skip with its message.
"""

import json

import dagster as dg

from dagster_autotag.resources import LabelStudioResource
from dagster_autotag.review.label_studio import LabelStudioError
from dagster_autotag.review.tasks import project_title

COUNT_FIELDS = ("total_annotations_number", "skipped_annotations_number")


def review_state(client) -> dict[str, list[int]]:
    """project title → its annotation counts, for the review projects."""
    prefix = project_title("")
    projects = client.json("GET", "/api/projects/", params={"page_size": 1000})
    rows = projects["results"] if isinstance(projects, dict) else projects
    return {p["title"]: [int(p.get(f) or 0) for f in COUNT_FIELDS] for p in rows if p["title"].startswith(prefix)}


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
        if cursor == (context.cursor or json.dumps({})) or not any(sum(v) for v in state.values()):
            return dg.SensorResult(skip_reason="no new annotations in Label Studio", cursor=cursor)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=cursor, tags={"autotag/trigger": "review_sensor"})], cursor=cursor
        )

    return review_sensor
