"""The Parquet lake: hive-style partition paths and atomic partition replacement.

A partition is written into `lake/_staging/<uuid>/` and then swapped into place with one
`renameat2(RENAME_EXCHANGE)` (two renames where the kernel lacks it), so a reader sees the old or
the new partition, never a half-written one, and a crash leaves the previous version untouched.
The partition value lives only in the directory name (`dt=…`), never as a column in the files.
"""

import ctypes
import errno
import os
import shutil
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

PART_FILE = "part-0.parquet"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def partition_dir(lake: Path, layer: str, table: str, dt: str) -> Path:
    return lake / layer / table / f"dt={dt}"


def table_glob(lake: Path, layer: str, table: str) -> str:
    return str(lake / layer / table / "*" / "*.parquet")


@contextmanager
def staged_partition(lake: Path, layer: str, table: str, dt: str) -> Iterator[Path]:
    """Yields an empty staging dir; on clean exit it atomically replaces the partition."""
    with staged_directory(lake, partition_dir(lake, layer, table, dt)) as staging:
        yield staging


@contextmanager
def staged_directory(lake: Path, target: Path) -> Iterator[Path]:
    """Yields an empty staging dir; on clean exit it atomically replaces `target` (any folder)."""
    staging = lake / "_staging" / uuid.uuid4().hex
    staging.mkdir(parents=True)
    try:
        yield staging
        swap_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_partition(lake: Path, layer: str, table: str, dt: str, frame: pl.DataFrame | pa.Table) -> Path:
    table_arrow = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
    with staged_partition(lake, layer, table, dt) as staging:
        write_parquet(table_arrow, staging / PART_FILE)
    return partition_dir(lake, layer, table, dt)


def write_parquet(table: pa.Table, path: Path) -> None:
    # Fixed settings and no timestamps in the footer: identical input gives identical bytes.
    pq.write_table(table, path, compression="zstd", row_group_size=256_000, write_statistics=True)


def parquet_writer(path: Path, schema: pa.Schema, bulky_columns: Collection[str] = ()) -> pq.ParquetWriter:
    """zstd throughout, except `bulky_columns` (kilobyte JSON payloads): lz4 and no dictionary
    attempt; measured on ASR JSON, a third less CPU to write and half to read, for 1.6x the bytes."""
    if not bulky_columns:
        return pq.ParquetWriter(path, schema, compression="zstd", write_statistics=True)
    return pq.ParquetWriter(
        path,
        schema,
        compression={name: "lz4" if name in bulky_columns else "zstd" for name in schema.names},
        use_dictionary=[name for name in schema.names if name not in bulky_columns],
        write_statistics=True,
    )


def read_partition(lake: Path, layer: str, table: str, dt: str) -> pl.LazyFrame:
    folder = partition_dir(lake, layer, table, dt)
    if not folder.is_dir():
        raise FileNotFoundError(f"{layer}/{table} has no partition {dt}: expected {folder}; materialize it first")
    return pl.scan_parquet(str(folder / "*.parquet"))


def swap_into_place(staging: Path, target: Path) -> None:
    """Make `staging` the directory at `target` atomically; afterwards `staging` holds the old
    version (or is gone) and the caller removes it. Two runs writing one partition at once each
    swap in a complete version; the last one stays."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        if not target.exists():
            try:
                os.rename(staging, target)
                return
            except OSError as exc:  # another run created it since we looked: exchange with theirs
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        if _rename_exchange(staging, target):
            return
        old = staging.with_name(f"{staging.name}-old-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(target, old)
        except FileNotFoundError:  # another run moved it away first: try again
            continue
        try:
            os.rename(staging, target)
        except OSError as exc:  # and another one put theirs in meanwhile: theirs is complete too
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        shutil.rmtree(old, ignore_errors=True)
        return
    raise RuntimeError(f"could not swap {staging} into {target}: other writers kept replacing it")


def _rename_exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0
