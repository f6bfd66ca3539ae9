"""A real HiveServer2 for tests: the Spark Thrift Server shipped in the pyspark wheel.

The wheel has no sbin/start-thriftserver.sh, so we run spark-submit on HiveThriftServer2 directly.
spark-submit execs into the JVM, so the Popen pid *is* the server pid; `HiveServer.stop()` ends it
by that pid. Everything the server writes (warehouse, Derby metastore, scratch dirs, java.io.tmpdir,
log) stays under the given work dir. It binds 127.0.0.1 only, on a free port, with the default
`hive.server2.authentication=NONE` (SASL PLAIN, any user/password), which pyhive speaks by default.

Also: `create_export_tables` (the four export tables of ingest/tables.py) and `load_rows`
(idempotent partition loads with exact round-tripping of odd strings).
"""

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyhive import hive

from dagster_autotag.ingest.source import validate_partition
from dagster_autotag.ingest.tables import EXPORT_TABLES, ExportTable

HOST = "127.0.0.1"
INSERT_CHUNK_ROWS = 500
_COLUMN_TYPES = {"string": "STRING", "int": "INT", "timestamp": "STRING"}
_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


class HiveServerUnavailable(RuntimeError):
    """Java is missing: the server cannot run on this machine (tests skip on this; .ci/run installs it)."""


@dataclass
class HiveServer:
    host: str
    port: int
    pid: int
    log_path: Path
    workdir: Path
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    startup_s: float | None = None  # launch until `SELECT 1` answered

    def connect(self, **kwargs) -> hive.Connection:
        kwargs.setdefault("username", "autotag")
        return hive.connect(host=self.host, port=self.port, **kwargs)

    def is_running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return _pid_alive(self.pid)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the server (Spark's shutdown hook stops it cleanly), SIGKILL if it lingers."""
        if not self.is_running():
            self._reap()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if not self._wait(timeout_s):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait(10.0)
        self._reap()

    def _wait(self, timeout_s: float) -> bool:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout_s)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _pid_alive(self.pid):
                return True
            time.sleep(0.2)
        return False

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def failure_summary(self) -> str:
        """The log's first error lines (the cause; the tail is mostly shutdown noise) + its tail."""
        errors = [
            ln
            for ln in self.log_tail(10_000).splitlines()
            if " ERROR " in ln or "Exception" in ln or ln.startswith("Caused by")
        ]
        return f"log {self.log_path}\nfirst errors:\n" + "\n".join(errors[:8]) + "\nlog tail:\n" + self.log_tail(30)

    def __enter__(self) -> "HiveServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise HiveServerUnavailable("java not found (set JAVA_HOME or put java on PATH)")
    return java


def find_spark_home() -> Path:
    """pyspark is a dev dependency: missing, it is an error, not a reason to skip."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyspark is not installed (pip install -e '.[dev]')")
    spark_home = Path(spec.origin).parent
    if not (spark_home / "bin" / "spark-submit").is_file():
        raise RuntimeError(f"no bin/spark-submit under {spark_home}")
    return spark_home


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux only)
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_hive_server(
    workdir: Path,
    timeout_s: float = 120,
    port: int | None = None,
    die_with_parent: bool = True,
) -> HiveServer:
    """Start a Spark Thrift Server under `workdir`; return once `SELECT 1` answers.

    Without `port`, a free one is picked (and picked again once if another process took it first).
    `die_with_parent` (Linux): the JVM gets SIGTERM if this Python process dies without cleaning up.
    """
    attempts = 1 if port else 2
    for attempt in range(1, attempts + 1):
        try:
            return _start(Path(workdir), timeout_s, port or free_port(), die_with_parent)
        except ServerExited as exc:
            if attempt == attempts or "Address already in use" not in exc.log:
                raise
    raise AssertionError("unreachable")


class ServerExited(RuntimeError):
    def __init__(self, message: str, log: str):
        super().__init__(message)
        self.log = log


def _start(workdir: Path, timeout_s: float, port: int, die_with_parent: bool) -> HiveServer:
    java = find_java()
    spark_home = find_spark_home()
    workdir = Path(workdir).resolve()
    dirs = {name: workdir / name for name in ("warehouse", "tmp", "scratch", "oplogs", "conf")}
    for d in [*dirs.values(), dirs["scratch"] / "local", dirs["scratch"] / "hdfs"]:
        d.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    jvm_opts = " ".join(
        [
            f"-Dderby.system.home={workdir / 'derby'}",
            f"-Djava.io.tmpdir={dirs['tmp']}",
            "-XX:-UsePerfData",  # no /tmp/hsperfdata_<user>
            # Small data, few cores: C1 only and the serial GC start and answer faster.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
        ]
    )
    hiveconf = {
        "hive.server2.thrift.bind.host": HOST,
        "hive.server2.thrift.port": str(port),
        "javax.jdo.option.ConnectionURL": (f"jdbc:derby:;databaseName={workdir / 'metastore_db'};create=true"),
        "hive.exec.scratchdir": str(dirs["scratch"] / "hdfs"),
        "hive.exec.local.scratchdir": str(dirs["scratch"] / "local"),
        "hive.downloaded.resources.dir": str(dirs["scratch"] / "resources"),
        "hive.querylog.location": str(dirs["scratch"] / "querylog"),
        "hive.server2.logging.operation.log.location": str(dirs["oplogs"]),
    }
    cmd = [
        str(spark_home / "bin" / "spark-submit"),
        "--class", _SERVER_CLASS,
        "--name", "autotag-hive-test-server",
        "--master", "local[2]",
        "--driver-memory", "1g",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.driver.host={HOST}",
        "--conf", f"spark.driver.bindAddress={HOST}",
        "--conf", "spark.sql.shuffle.partitions=2",
        "--conf", f"spark.sql.warehouse.dir={dirs['warehouse']}",
        "--conf", f"spark.local.dir={dirs['tmp']}",
        "--conf", f"spark.driver.extraJavaOptions={jvm_opts}",
    ]  # fmt: skip
    for key, value in hiveconf.items():
        cmd += ["--hiveconf", f"{key}={value}"]
    cmd.append("spark-internal")

    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(spark_home),
        JAVA_HOME=str(Path(java).resolve().parent.parent),
        SPARK_CONF_DIR=str(dirs["conf"]),  # empty: no stray spark-defaults/hive-site
        SPARK_LAUNCHER_OPTS="-XX:-UsePerfData",
        SPARK_LOCAL_IP=HOST,
        TMPDIR=str(dirs["tmp"]),
    )
    env.pop("HADOOP_CONF_DIR", None)
    env.pop("HIVE_CONF_DIR", None)

    t0 = time.monotonic()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal is ours to handle, not the JVM's
            preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None,
        )
    server = HiveServer(HOST, port, proc.pid, log_path, workdir, proc)
    try:
        _wait_until_ready(server, timeout_s)
    except BaseException:
        server.stop()
        raise
    server.startup_s = time.monotonic() - t0
    return server


def _wait_until_ready(server: HiveServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not server.is_running():
            raise ServerExited(
                f"Spark Thrift Server exited during startup (pid {server.pid}):\n" + server.failure_summary(),
                server.log_tail(10_000),
            )
        try:
            with socket.create_connection((server.host, server.port), timeout=1):
                pass
            if _probe(server):
                return
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(0.5)
    raise TimeoutError(
        f"Spark Thrift Server on {server.host}:{server.port} not ready after {timeout_s:.0f}s "
        f"(last error: {last_error!r}):\n{server.failure_summary()}"
    )


def _probe(server: HiveServer, timeout_s: float = 30.0) -> bool:
    """`SELECT 1` over a socket with a timeout, so a half-started server cannot hang the wait."""
    import thrift_sasl
    from thrift.transport.TSocket import TSocket

    sock = TSocket(server.host, server.port)
    sock.setTimeout(timeout_s * 1000)
    transport = thrift_sasl.TSaslClientTransport(
        lambda: hive.get_installed_sasl(host=server.host, sasl_auth="PLAIN", username="autotag", password="x"),
        "PLAIN",
        sock,
    )
    with contextlib.closing(hive.connect(thrift_transport=transport, username="autotag")) as conn:
        with contextlib.closing(conn.cursor()) as cur:
            cur.execute("SELECT 1")
            return cur.fetchall() == [(1,)]


def _execute(conn: hive.Connection, sql: str, params=None) -> None:
    with contextlib.closing(conn.cursor()) as cur:
        cur.execute(sql, params)


def table_ddl(table: ExportTable) -> str:
    columns = ", ".join(f"`{c.name}` {_COLUMN_TYPES[c.kind]}" for c in table.columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {table.hive_table} ({columns}) "
        f"PARTITIONED BY (`{table.partition_column}` STRING) STORED AS PARQUET"
    )


def create_export_tables(conn: hive.Connection) -> None:
    """Create the databases and the four export tables (Hive format, Parquet, partitioned)."""
    databases = sorted({t.hive_table.split(".")[0] for t in EXPORT_TABLES.values()})
    for db in databases:
        _execute(conn, f"CREATE DATABASE IF NOT EXISTS {db}")
    for table in EXPORT_TABLES.values():
        _execute(conn, table_ddl(table))


def drop_partition(conn: hive.Connection, table: ExportTable, dt: str) -> None:
    validate_partition(dt)
    _execute(
        conn,
        f"ALTER TABLE {table.hive_table} DROP IF EXISTS PARTITION (`{table.partition_column}` = %(dt)s)",
        {"dt": dt},
    )


def load_rows(
    conn: hive.Connection,
    table: ExportTable,
    dt: str,
    rows: Sequence[Sequence[str | None]],
    chunk_rows: int = INSERT_CHUNK_ROWS,
) -> None:
    """Replace partition `dt` of `table` with `rows` (ExportTable column order, str or None).

    Values go through pyhive's own parameter escaping (`\\`, `'`, CR, LF, TAB become backslash
    escapes), which Spark SQL's string-literal parser undoes exactly, so arbitrary text round-trips.
    INT columns are inserted as TRY_CAST(<string> AS INT): a non-numeric value becomes NULL, as it
    would when Hive reads it. Idempotent: the partition is dropped first, then filled in chunks.
    """
    validate_partition(dt)
    width = len(table.columns)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{table.name} row {i} has {len(row)} values, expected {width}")
    drop_partition(conn, table, dt)
    placeholders = ", ".join("TRY_CAST(%s AS INT)" if c.kind == "int" else "%s" for c in table.columns)
    head = (
        f"INSERT INTO {table.hive_table} PARTITION (`{table.partition_column}` = '{dt}') "
        f"({', '.join(f'`{n}`' for n in table.column_names)}) VALUES "
    )
    for start in range(0, len(rows), chunk_rows):
        chunk = rows[start : start + chunk_rows]
        sql = head + ", ".join(f"({placeholders})" for _ in chunk)
        params = tuple(None if v is None else str(v) for row in chunk for v in row)
        _execute(conn, sql, params)


# --- by hand: bin/hive-test-server ------------------------------------------------------------

_STATE_FILE = "server.json"


def _default_workdir() -> Path:
    from dagster_autotag import settings

    return settings.autotag_home() / "hive-test-server"


def _read_state(workdir: Path) -> HiveServer | None:
    import json

    try:
        state = json.loads((workdir / _STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    server = HiveServer(state["host"], state["port"], state["pid"], Path(state["log"]), workdir)
    try:  # the pid must still be *our* server, not a recycled pid
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    if _SERVER_CLASS not in cmdline or str(workdir) not in cmdline or not server.is_running():
        return None
    return server


def _write_state(server: HiveServer) -> None:
    import json

    state = {"host": server.host, "port": server.port, "pid": server.pid}
    state["log"] = str(server.log_path)
    (server.workdir / _STATE_FILE).write_text(json.dumps(state))


def _announce(server: HiveServer) -> None:
    print(f"HiveServer2 on {server.host}:{server.port} (pid {server.pid}, log {server.log_path})")
    print(f"export AUTOTAG_HIVE_HOST={server.host} AUTOTAG_HIVE_PORT={server.port}")


def _prepare(server: HiveServer, load_sample: str | None, items: int) -> None:
    with server.connect() as conn:
        create_export_tables(conn)
        if load_sample:
            from dagster_autotag.sample.generator import generate_day

            day = generate_day(load_sample, items=items)
            for name, rows in day.rows.items():
                table = EXPORT_TABLES[name]
                load_rows(conn, table, load_sample, rows)
                print(f"loaded {len(rows)} rows into {table.hive_table} {load_sample}")


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="hive-test-server",
        description="A local HiveServer2 (Spark Thrift Server) with the four export tables.",
    )
    parser.add_argument("command", choices=["run", "start", "stop", "status"], nargs="?", default="run")
    parser.add_argument("--workdir", type=Path, help="default $AUTOTAG_HOME/hive-test-server")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--load-sample", metavar="YYYY-MM-DD", help="load a generated day")
    parser.add_argument("--items", type=int, default=2000, help="items for --load-sample")
    parser.add_argument("--timeout", type=float, default=180, help="startup timeout (s)")
    args = parser.parse_args(argv)
    workdir = (args.workdir or _default_workdir()).resolve()
    running = _read_state(workdir)

    if args.command == "status":
        if running is None:
            print(f"not running ({workdir})")
            return 1
        _announce(running)
        return 0
    if args.command == "stop":
        if running is None:
            print(f"not running ({workdir})")
            return 0
        running.stop()
        (workdir / _STATE_FILE).unlink(missing_ok=True)
        print(f"stopped pid {running.pid}")
        return 0
    if running is not None:
        print("already running:")
        _announce(running)
        return 1

    daemon = args.command == "start"
    server = start_hive_server(workdir, timeout_s=args.timeout, port=args.port, die_with_parent=not daemon)
    try:
        _prepare(server, args.load_sample, args.items)
    except BaseException:
        server.stop()
        raise
    _write_state(server)
    _announce(server)
    if daemon:
        print(f"stop with: bin/hive-test-server stop --workdir {workdir}")
        return 0
    print("Ctrl-C to stop")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while server.is_running():
            time.sleep(1)
        print("server exited; log tail:\n" + server.log_tail(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        (workdir / _STATE_FILE).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
