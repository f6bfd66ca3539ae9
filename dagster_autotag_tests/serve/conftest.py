"""A real `autotag serve` on 127.0.0.1 over a real (sqlite) MLflow registry, started in a subprocess by a
fixture and stopped by it."""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from dagster_autotag_tests.serve import registry

TOKEN = "test-token-5b1f"  # a test secret: the service must never print it
MAX_FIELD_CHARS = 1000  # small, so that a body over the size limit (~6 MB) is cheap to send
STARTUP_TIMEOUT_S = float(os.environ.get("AUTOTAG_SERVE_TEST_TIMEOUT_S", "120"))


@dataclass
class Home:
    path: Path
    uri: str
    versions: dict[str, str]  # "good", "strict", "legacy" → registered version
    texts: list[str]


@pytest.fixture(scope="package")
def serve_home(tmp_path_factory) -> Home:
    """v1 good linear (champion), v2 the same with a stricter gate, v3 v1 registered the old way."""
    import polars as pl

    home = tmp_path_factory.mktemp("serve_home")
    dataset = registry.write_dataset(home)
    uri = registry.use_store(home)
    texts = pl.read_parquet(dataset / "test.parquet")["text"].to_list()
    good = registry.train_linear(dataset, home / "models")
    versions = {"good": registry.register(good, texts)}
    versions["strict"] = registry.register(registry.stricter_copy(good, home / "models" / "strict"), texts)
    versions["legacy"] = registry.register_like_before(good, texts)
    registry.set_champion(versions["good"])
    return Home(home, uri, versions, texts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    url: str
    process: subprocess.Popen
    log: Path
    token: str | None

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers(), timeout=30, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        headers = {**self.headers(), **kw.pop("headers", {})}
        return requests.post(self.url + path, headers=headers, timeout=30, **kw)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_service(home: Path, log: Path, *args: str, token: str | None = None, ready: bool = True) -> Service:
    """Started and answering /healthz with 200 (`ready`), or with anything (not `ready`: a service that
    cannot load its model)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTAG_")}
    env |= {"AUTOTAG_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    if token:
        env["AUTOTAG_API_TOKEN"] = token
    command = [sys.executable, "-m", "dagster_autotag.cli", "serve", "--schemes", registry.SCHEME,
               "--port", str(port), "--poll-s", "0.5", "--max-field-chars", str(MAX_FIELD_CHARS), *args]  # fmt: skip
    handle = log.open("wb")
    process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    service = Service(f"http://127.0.0.1:{port}", process, log, token)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"autotag serve exited ({process.returncode}):\n{service.log_text()[-4000:]}")
        try:
            if service.get("/healthz").status_code == 200 or not ready:
                return service
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    stop_service(service)
    raise RuntimeError(f"autotag serve not ready in {STARTUP_TIMEOUT_S:.0f} s:\n{service.log_text()[-4000:]}")


def stop_service(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(20)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait(10)


@pytest.fixture(scope="package")
def service(serve_home, tmp_path_factory):
    """The service over serve_home with a bearer token required."""
    running = start_service(serve_home.path, tmp_path_factory.mktemp("serve_log") / "serve.log", token=TOKEN)
    yield running
    stop_service(running)
