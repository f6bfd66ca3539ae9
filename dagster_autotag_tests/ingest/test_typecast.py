"""Typing a source batch: good rows keep their values whichever way they are selected."""

import pyarrow as pa
import pytest

from dagster_autotag.ingest.tables import EXPORT_TABLES
from dagster_autotag.ingest.typecast import type_batch

ASR = EXPORT_TABLES["asr"]


def asr_batch(n: int, missing: set[int]) -> pa.Table:
    return pa.table(
        {
            "video_id": pa.array([None if i in missing else f"v{i}" for i in range(n)], pa.string()),
            "result_asr": [f'[{{"text": "第{i}段"}}]' for i in range(n)],
            "_file": ["asr/dt=2024-05-01/000000_0"] * n,
            "_line": pa.array(range(1, n + 1), pa.int64()),
        }
    )


@pytest.mark.parametrize("every", [500, 3], ids=["few bad rows: zero-copy slices", "bad rows all over: one copy"])
def test_good_rows_and_quarantine_count_whichever_way_rows_are_selected(every):
    n = 3000
    missing = set(range(0, n, every))
    typed = type_batch(ASR, asr_batch(n, missing), "landing")
    good = [i for i in range(n) if i not in missing]
    assert typed.quarantine.height == len(missing)
    assert set(typed.quarantine["reason"]) == {"missing video_id"}
    rows = typed.rows
    assert rows.column("video_id").to_pylist() == [f"v{i}" for i in good]
    assert rows.column("result_asr").to_pylist() == [f'[{{"text": "第{i}段"}}]' for i in good]
    assert rows.column("_line").to_pylist() == [i + 1 for i in good]
    assert set(rows.column("_source").to_pylist()) == {"landing"}
    assert rows.schema.field("result_asr").type == pa.string()


def test_a_batch_without_bad_rows_passes_through_and_an_all_bad_one_keeps_nothing():
    assert type_batch(ASR, asr_batch(10, set()), "landing").rows.num_rows == 10
    nothing = type_batch(ASR, asr_batch(10, set(range(10))), "landing")
    assert nothing.rows.num_rows == 0 and nothing.quarantine.height == 10
