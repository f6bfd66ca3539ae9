"""HiveServer2 export reader: runs sql/exports/<table>.sql for one partition and streams the rows.

Rows come back as nullable strings in `ExportTable.columns` order (see source.py); typing, filters
beyond the SQL's and quarantine of bad values happen downstream, identically for both sources.
The password is never logged, never put in an error message and hidden from the reader's repr.
Pure: `HiveExportSource` (dagster_autotag/resources.py) is the Dagster resource that builds this
reader from its run configuration (the password as `dg.EnvVar("AUTOTAG_HIVE_PASSWORD")`, so
Dagster records the variable's name, not its value). Logs go to the standard logger
`dagster_autotag.ingest.hive_client`.
"""

import contextlib
import datetime as _dt
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from pyhive import hive
from thrift.transport.TTransport import TTransportException

from dagster_autotag import settings
from dagster_autotag.ingest.source import (
    QuarantinedLine,
    RawBatch,
    raw_batch_schema,
    validate_partition,
)
from dagster_autotag.ingest.tables import ExportTable
from dagster_autotag.ingest.tsv_format import NULL_LITERAL

log = logging.getLogger(__name__)
_sleep = time.sleep  # tests replace this to observe the backoff

AUTH_MODES = ("NONE", "NOSASL", "LDAP", "CUSTOM")
PASSWORD_AUTH_MODES = ("LDAP", "CUSTOM")
INVALID_UTF8 = "invalid UTF-8"


class HiveExportError(RuntimeError):
    """Connecting to HiveServer2 or running an export query failed; the message names host:port
    and the Hive table, never the password."""


class _Undecodable(Exception):
    pass


def hive_value_to_str(value: object) -> str | None:
    """One value from pyhive as the string Hive's CLI would print; None stays None.

    Raises _Undecodable for bytes that are not UTF-8.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, _dt.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond:06d}".rstrip("0")
        return text
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Undecodable from exc
    return str(value)


def _raw_record(row: Sequence[object]) -> str:
    """A row as one tab-separated record for quarantine; undecodable bytes as \\x.. escapes."""
    parts = []
    for v in row:
        if v is None:
            parts.append(NULL_LITERAL)
        elif isinstance(v, bytes | bytearray | memoryview):
            parts.append(bytes(v).decode("utf-8", errors="backslashreplace"))
        else:
            parts.append(hive_value_to_str(v))  # only bytes can be undecodable
    return "\t".join(parts)


def rows_to_batch(table: ExportTable, rows: Sequence[Sequence[object]], file: str, first_line: int) -> RawBatch:
    """Convert one fetchmany() chunk; `first_line` is the 1-based ordinal of rows[0]."""
    width = len(table.columns)
    columns: list[list[str | None]] = [[] for _ in range(width)]
    lines: list[int] = []
    quarantine: list[QuarantinedLine] = []
    for offset, row in enumerate(rows):
        line = first_line + offset
        if len(row) != width:
            reason = f"expected {width} columns, got {len(row)}"
            quarantine.append(QuarantinedLine(file, line, _raw_record(row), reason))
            continue
        try:
            values = [hive_value_to_str(v) for v in row]
        except _Undecodable:
            quarantine.append(QuarantinedLine(file, line, _raw_record(row), INVALID_UTF8))
            continue
        for col, v in zip(columns, values, strict=True):
            col.append(v)
        lines.append(line)
    schema = raw_batch_schema(table)
    arrays = [pa.array(col, type=pa.string()) for col in columns]
    arrays.append(pa.array([file] * len(lines), type=pa.string()))
    arrays.append(pa.array(lines, type=pa.int64()))
    return RawBatch(rows=pa.Table.from_arrays(arrays, schema=schema), quarantine=quarantine)


def _is_auth_failure(exc: Exception) -> bool:
    """thrift_sasl's errors when the server answers the SASL handshake with BAD/ERROR."""
    return isinstance(exc, TTransportException) and str(exc).startswith(("Bad status:", "Bad SASL result:"))


def _close_quietly(conn) -> None:
    """Close the session; if CloseSession fails (server gone), still close the socket."""
    try:
        conn.close()
    except Exception:
        with contextlib.suppress(Exception):
            conn._transport.close()


def load_export_sql(sql_dir: str | Path, table: ExportTable) -> str:
    """The table's HiveQL with full-line `--` comments and a trailing `;` removed.

    HiveServer2 rejects a trailing `;`, and dropping the comments keeps a stray `%` in one of them
    from upsetting pyhive's pyformat substitution.
    """
    path = Path(sql_dir) / f"{table.name}.sql"
    text = path.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
    sql = "\n".join(lines).strip().rstrip(";").strip()
    if "%(dt)s" not in sql:
        raise ValueError(f"{path} must filter its partition with %(dt)s")
    return sql


@dataclass(frozen=True)
class HiveExportReader:
    """Reads the exports from HiveServer2 (pyhive, binary Thrift transport)."""

    host: str
    port: int = 10000
    username: str = "autotag"
    password: str | None = field(default=None, repr=False)  # sent for auth LDAP/CUSTOM only
    auth: str = "NONE"  # hive.server2.authentication: NONE, NOSASL, LDAP or CUSTOM
    database: str = "default"  # session database (the export SQL is fully qualified)
    fetch_size: int = 10_000  # rows per fetchmany() and per RawBatch
    connect_retries: int = 3  # retries after a failed connection attempt (attempts = 1 + retries)
    retry_backoff_s: float = 1.0  # sleep before retry k (1, 2, ...) is retry_backoff_s * 2**(k-1)
    sql_dir: str | Path = str(settings.SQL_DIR)  # directory holding <table>.sql

    @property
    def source_name(self) -> str:
        return "hive"

    def file_label(self, table: ExportTable) -> str:
        return f"hive://{self.host}:{self.port}/{table.hive_table}"

    def _scrub(self, text: str) -> str:
        if self.password:
            text = text.replace(self.password, "***")
        return text

    def _connect_once(self):
        auth = self.auth.upper()
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {AUTH_MODES}, got {self.auth!r}")
        kwargs = {}
        if auth in PASSWORD_AUTH_MODES:
            if not self.password:
                raise ValueError(f"auth {auth} needs a password (AUTOTAG_HIVE_PASSWORD)")
            kwargs["password"] = self.password
        return hive.connect(
            host=self.host,
            port=self.port,
            username=self.username,
            auth=auth,
            database=self.database,
            **kwargs,
        )

    def connect(self, table: ExportTable):
        """A pyhive connection, retried with exponential backoff; `table` only names the error."""
        attempts = 1 + max(0, self.connect_retries)
        where = f"{self.host}:{self.port}"
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                conn = self._connect_once()
            except (ValueError, NotImplementedError):
                raise  # configuration errors: retrying cannot help
            except Exception as exc:
                last = exc
                if _is_auth_failure(exc):  # retrying could lock the account (LDAP)
                    raise HiveExportError(
                        f"HiveServer2 at {where} rejected the login of user {self.username!r} "
                        f"(auth {self.auth}) while exporting {table.hive_table}: "
                        f"{self._scrub(str(exc))}"
                    ) from exc
                log.warning(
                    "HiveServer2 %s: connection attempt %d/%d failed (%s: %s)",
                    where, attempt, attempts, type(exc).__name__, self._scrub(str(exc)),
                )  # fmt: skip
                if attempt < attempts:
                    _sleep(self.retry_backoff_s * 2 ** (attempt - 1))
                continue
            log.info("connected to HiveServer2 %s as %s (auth %s)", where, self.username, self.auth)
            return conn
        assert last is not None
        raise HiveExportError(
            f"could not connect to HiveServer2 at {where} to export {table.hive_table} "
            f"after {attempts} attempts: {type(last).__name__}: {self._scrub(str(last))}"
        ) from last

    def iter_batches(self, table: ExportTable, dt: str) -> Iterator[RawBatch]:
        validate_partition(dt)
        if self.fetch_size < 1:
            raise ValueError(f"fetch_size must be >= 1, got {self.fetch_size}")
        sql = load_export_sql(self.sql_dir, table)
        file = self.file_label(table)
        where = f"{self.host}:{self.port}"
        started = time.monotonic()
        rows_out = quarantined = batches = 0
        conn = self.connect(table)
        try:
            with contextlib.closing(conn.cursor()) as cursor:
                cursor.arraysize = self.fetch_size
                log.info("HiveServer2 %s: exporting %s partition %s", where, table.hive_table, dt)
                try:
                    cursor.execute(sql, {"dt": dt})
                except Exception as exc:
                    raise HiveExportError(
                        f"export query for {table.hive_table} partition {dt} failed on "
                        f"HiveServer2 {where}: {type(exc).__name__}: {self._scrub(str(exc))}"
                    ) from exc
                width = len(cursor.description or ())
                if width != len(table.columns):
                    raise HiveExportError(
                        f"{Path(self.sql_dir) / (table.name + '.sql')} returns {width} columns, "
                        f"expected {len(table.columns)}: {', '.join(table.column_names)}"
                    )
                next_line = 1
                while True:
                    chunk = cursor.fetchmany(self.fetch_size)
                    if not chunk:
                        break
                    batch = rows_to_batch(table, chunk, file, next_line)
                    next_line += len(chunk)
                    rows_out += batch.rows.num_rows
                    quarantined += len(batch.quarantine)
                    batches += 1
                    yield batch
        finally:
            _close_quietly(conn)
        log.info(
            "HiveServer2 %s: %s partition %s: %d rows, %d quarantined, %d batches in %.1fs",
            where, table.hive_table, dt, rows_out, quarantined, batches, time.monotonic() - started,
        )  # fmt: skip
