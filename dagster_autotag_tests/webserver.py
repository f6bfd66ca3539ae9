"""A real dagster-webserver on the project's workspace, and a headless Chromium to look at it."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from dagster_autotag.settings import REPO_ROOT

START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dagster_webserver(env: dict[str, str]) -> Iterator[str]:
    """Starts `dagster-webserver -w workspace.yaml` with `env`; yields its base URL."""
    with _serving([sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml"], env) as url:
        yield url


@contextmanager
def dagster_dev(env: dict[str, str]) -> Iterator[str]:
    """Starts `dagster dev -w workspace.yaml` (webserver and daemon: schedules, sensors, the run queue,
    backfills) with `env`; yields the webserver's base URL."""
    with _serving([sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml"], env) as url:
        yield url


@contextmanager
def _serving(command: list[str], env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    # A file, not a pipe: nobody reads a pipe while the test runs, and once its buffer is full every
    # process logging to it (run workers included) blocks.
    log = tempfile.TemporaryFile(mode="w+", prefix="dagster-serve-")
    proc = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: every child (daemon, code server, runs) is stopped
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{command[2]} exited with {proc.returncode}:\n{log.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[2]} did not answer on {url} within {START_TIMEOUT_S}s") from None
                time.sleep(0.5)
        yield url
    finally:
        _stop_group(proc)
        log.close()


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the group (dagster dev stops its children), then SIGKILL to any straggler."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    time.sleep(1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on PATH (Debian: apt-get install chromium fonts-noto-cjk)")


# Quiet, reproducible headless Chromium: no GPU, no background traffic, no first-run UI.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip


@contextmanager
def browser_page(width: int = 1400, height: int = 1800):
    """A page in headless Chromium with a fresh profile (Playwright makes a temporary one). Playwright
    is a dev dependency: without it the test fails; without a Chromium binary it skips (.ci/run
    installs one)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


def dismiss_welcome_dialog(url: str) -> None:
    """Dagster shows a 'Join the community' dialog on a fresh instance; the UI's own mutation marks
    it seen (otherwise it can pop up over the page at any moment and swallow clicks)."""
    assert graphql(url, "mutation { setNuxSeen }")["setNuxSeen"] is True


LOCATION_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name locationOrLoadError {
  __typename ... on PythonError { message }
  ... on RepositoryLocation { repositories { name schedules { name } sensors { name }
    assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } } } } } } } }"""


def loaded_location(url: str) -> dict:
    """The code location as the webserver loaded it: assets, checks, schedules, sensors."""
    entries = graphql(url, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
    assert len(entries) == 1, entries
    location = entries[0]["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    repo = location["repositories"][0]
    return {
        "assets": {"/".join(n["assetKey"]["path"]) for n in repo["assetNodes"]},
        "checks": {
            f"{'/'.join(n['assetKey']['path'])}:{c['name']}"
            for n in repo["assetNodes"]
            for c in n["assetChecksOrError"].get("checks", [])
        },
        "schedules": {s["name"] for s in repo["schedules"]},
        "sensors": {s["name"] for s in repo["sensors"]},
    }
