"""Label Studio projects and tasks for review (pure: builds JSON and XML, sends nothing).

One project per scheme, titled `autotag <scheme>`: the item's text, one checkbox per label (the
gate name first, then every sub-label of the dataset), the model's labels pre-filled as a
prediction the reviewer accepts or corrects, and the stream and reasons shown above the text.
"""

from xml.sax.saxutils import quoteattr

import polars as pl

FROM_NAME, TO_NAME = "labels", "text"


def project_title(scheme: str) -> str:
    return f"autotag {scheme}"


def label_config(choices: list[str]) -> str:
    """Label Studio's labelling config: the text, and one checkbox per choice (multi-select)."""
    boxes = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in choices)
    return (
        "<View>\n"
        '  <Header value="$stream: $reasons"/>\n'
        f'  <Text name="{TO_NAME}" value="$text"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="multiple" showInline="false">\n'
        f"{boxes}\n"
        "  </Choices>\n"
        "</View>"
    )


def choices_result(labels: list[str]) -> list[dict]:
    """A Choices result as Label Studio stores it in predictions and annotations."""
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": list(labels)}}]


def labels_of(result: list[dict]) -> list[str]:
    """The chosen labels of an annotation's result (none ticked: [])."""
    chosen: list[str] = []
    for region in result or []:
        if region.get("from_name") == FROM_NAME and region.get("type") == "choices":
            chosen.extend(region.get("value", {}).get("choices", []))
    return list(dict.fromkeys(chosen))


def task_payloads(tasks: pl.DataFrame, scheme: str, dt: str, choices: list[str]) -> list[dict]:
    """Label Studio import JSON for selection.choose_tasks rows (pre-filled labels outside `choices`
    are left out: a checkbox the project does not have cannot be pre-ticked)."""
    allowed = set(choices)
    payloads = []
    for row in tasks.iter_rows(named=True):
        prefill = [lb for lb in row["predicted"] if lb in allowed]
        payloads.append(
            {
                "data": {
                    "itemid": row["itemid"],
                    "scheme": scheme,
                    "dt": dt,
                    "stream": row["stream"],
                    "reasons": ", ".join(row["reasons"]),
                    "audit_labels": row["audit_labels"],
                    "text": row["text"],
                },
                "predictions": [{"model_version": row["model"] or "", "result": choices_result(prefill)}],
            }
        )
    return payloads
