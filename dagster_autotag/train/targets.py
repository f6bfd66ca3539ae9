"""Dataset columns → training targets: multi-hot label matrices and the gate column."""

from dataclasses import dataclass, field

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Task:
    """A named prediction problem over an ordered list of label paths (a scheme's labels, or the gate)."""

    name: str
    targets: list[str] = field(default_factory=list)


def label_matrix(labels_column: list[list[str]] | pl.Series, label_names: list[str]) -> np.ndarray:
    """(n, L) float32 multi-hot, columns in `label_names` order. Labels outside `label_names` are
    ignored (the manifest decides what is learnt) and a null list counts as no label."""
    series = (
        labels_column if isinstance(labels_column, pl.Series) else pl.Series(labels_column, dtype=pl.List(pl.String))
    )
    n = len(series)
    y = np.zeros((n, len(label_names)), dtype=np.float32)
    if n == 0 or not label_names:
        return y
    index = pl.DataFrame({"label": label_names, "col": np.arange(len(label_names), dtype=np.int64)})
    # explode + join keeps this columnar: no Python loop over rows
    hits = pl.DataFrame({"label": series}).with_row_index("row").explode("label").join(index, on="label", how="inner")
    y[hits["row"].to_numpy(), hits["col"].to_numpy()] = 1.0
    return y


def gate_vector(gate: pl.Series) -> np.ndarray:
    """(n, 1) float32: 1.0 where the gate holds; a null gate counts as negative."""
    return gate.fill_null(False).cast(pl.Float32).to_numpy().reshape(-1, 1).astype(np.float32, copy=False)
