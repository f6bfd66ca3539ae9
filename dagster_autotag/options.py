"""Options with a description, for the pure config dataclasses (LinearConfig, TextCNNConfig, …).

`x: int = option(2, "what x does")` is `dataclasses.field(default=2, metadata={"description": …})`;
run_config.py shows the description in the Dagster launchpad, so it is written once, next to the
default. Why a default is what it is stays a comment.
"""

from dataclasses import Field, field
from typing import Any

DESCRIPTION = "description"


def option(default: Any, description: str) -> Any:
    return field(default=default, metadata={DESCRIPTION: description})


def description_of(f: Field) -> str | None:
    return f.metadata.get(DESCRIPTION)
