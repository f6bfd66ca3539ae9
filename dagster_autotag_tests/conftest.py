"""Shared fixtures. Keep each fixture small and documented; heavy ones are session-scoped."""

import atexit
import os

import pytest

from dagster_autotag_tests.demo_home import DemoHome, run_demo
from dagster_autotag_tests.hive_server import (
    HiveServer,
    HiveServerUnavailable,
    create_export_tables,
    start_hive_server,
)


@pytest.fixture(scope="session")
def hive_server(tmp_path_factory: pytest.TempPathFactory):
    """A real HiveServer2 (Spark Thrift Server) on 127.0.0.1 with the four export tables created.

    Started once per session (~10-20 s). Skips only when java is missing (a system package: .ci/run
    installs it); anything else fails the tests with the server log tail, pyspark missing included
    (a dev dependency). Stopped at session end, and by atexit if the session is interrupted; the
    JVM also gets SIGTERM if this process dies (Linux).
    Set AUTOTAG_HIVE_TEST_TIMEOUT_S to wait longer for a slow machine.
    """
    workdir = tmp_path_factory.mktemp("hive_server")
    timeout_s = float(os.environ.get("AUTOTAG_HIVE_TEST_TIMEOUT_S", "120"))
    try:
        server: HiveServer = start_hive_server(workdir, timeout_s=timeout_s)
    except HiveServerUnavailable as exc:
        pytest.skip(f"HiveServer2 tests need java: {exc}")
    atexit.register(server.stop)
    try:
        with server.connect() as conn:
            create_export_tables(conn)
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


# Environment variables that change what build_definitions() builds: the export source, which model
# kinds (and so which assets) exist, the schemes, the retrain cron, the quarantine limit.
LOCATION_ENV = (
    "AUTOTAG_SOURCE",
    "AUTOTAG_BERT_MODEL_DIR",
    "AUTOTAG_ENCODER_DIR",
    "AUTOTAG_CORPUS_CONFIG",
    "AUTOTAG_RETRAIN_CRON",
    "AUTOTAG_QUARANTINE_LIMIT",
    "AUTOTAG_RETENTION_CRON",
    "AUTOTAG_FRESHNESS_WARN_HOURS",
    "AUTOTAG_FRESHNESS_ERROR_HOURS",
)


@pytest.fixture
def location_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """None of LOCATION_ENV set for this test; set what the test is about on the returned monkeypatch."""
    for name in LOCATION_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def alert_webhook(monkeypatch: pytest.MonkeyPatch):
    """A real HTTP receiver on 127.0.0.1 (alert_receiver.py), and AUTOTAG_ALERT_WEBHOOK pointing at it
    with a secret in the path, as real webhook URLs carry one. Yields the receiver."""
    from dagster_autotag_tests.alert_receiver import alert_receiver

    with alert_receiver() as receiver:
        monkeypatch.setenv("AUTOTAG_ALERT_WEBHOOK", f"{receiver.url}/hooks/s3cr3t-token")
        monkeypatch.setenv("AUTOTAG_UI_URL", "http://dagster.example")
        yield receiver


@pytest.fixture(scope="session")
def location():
    """The code location as a fresh checkout builds it: `build_definitions()` with none of
    LOCATION_ENV set, so asset lists, schedules and limits do not follow the developer's shell."""
    from dagster_autotag.definitions import build_definitions  # heavy: only for the tests that use it

    with pytest.MonkeyPatch.context() as env:
        for name in LOCATION_ENV:
            env.delenv(name, raising=False)
        return build_definitions()


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> DemoHome:
    """`autotag demo` run once (three small days, demo_home.DEMO_DAYS; every layer, every job the demo
    runs) into a fresh home with a persistent Dagster instance; read-only for the tests that use it."""
    return run_demo(tmp_path_factory.mktemp("demo_home"))


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory):
    """A real Label Studio (its own virtualenv, bin/label-studio) on 127.0.0.1 with a reviewer user and
    their personal access token; started once per session (≈ 10 s; the first run on a machine also
    builds the virtualenv, 1–3 min). Never skipped: a build or start failure fails the tests that use
    it, with Label Studio's log tail. Stopped at session end, and by atexit if the session is cut short.
    Set AUTOTAG_LABEL_STUDIO_TEST_TIMEOUT_S to wait longer for a slow machine."""
    from dagster_autotag_tests.label_studio_server import start_label_studio

    timeout_s = float(os.environ.get("AUTOTAG_LABEL_STUDIO_TEST_TIMEOUT_S", "120"))
    server = start_label_studio(tmp_path_factory.mktemp("label_studio"), timeout_s=timeout_s)
    atexit.register(server.stop)
    try:
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)
