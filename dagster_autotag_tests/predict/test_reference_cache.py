"""The drift reference cache under lake/predictions/_reference/: partitions predicted at once profile a
champion once, and an unreadable entry is computed again, never trusted or fatal."""

import threading
from pathlib import Path

import polars as pl

from dagster_autotag.predict.reference import cached_reference_profile, reference_profile
from dagster_autotag_tests.predict.test_batch import scheme_model

TEXTS = ["新车谍照曝光", "新车正式上市", "新车报价公布", "机油保养技巧", "新车谍照路试"]


def dataset(path: Path) -> Path:
    for split in ("dev", "test"):
        rows = {"itemid": [f"{split}{k}" for k in range(len(TEXTS))], "dtype": ["news"] * len(TEXTS), "text": TEXTS}
        pl.DataFrame(rows).write_parquet(path / f"{split}.parquet")
    return path


def test_partitions_profiling_at_once_predict_the_reference_once(tmp_path: Path) -> None:
    model, data, cache = scheme_model(), dataset(tmp_path), tmp_path / "_reference"
    results, errors = [], []

    def profile() -> None:
        try:
            results.append(cached_reference_profile(cache, "autotag.s.linear v1", model, data))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=profile) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 4
    assert all(r == reference_profile(scheme_model(), data) for r in results)
    assert len(model.gate_model.batches) == 1  # one thread predicted; the others read its entry
    assert [p.name for p in cache.glob("*.json")] and not list(cache.glob("*.tmp"))


def test_an_unreadable_entry_is_computed_again(tmp_path: Path) -> None:
    data, cache = dataset(tmp_path), tmp_path / "_reference"
    expected = cached_reference_profile(cache, "autotag.s.linear v1", scheme_model(), data)
    (entry,) = cache.glob("*.json")
    entry.write_text('{"key": "trunc', encoding="utf-8")  # a disk filled up mid-write, say
    model = scheme_model()
    assert cached_reference_profile(cache, "autotag.s.linear v1", model, data) == expected
    assert model.gate_model.batches  # predicted again
    assert cached_reference_profile(cache, "autotag.s.linear v1", scheme_model(), data) == expected
