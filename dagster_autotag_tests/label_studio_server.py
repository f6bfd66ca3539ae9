"""A real Label Studio for tests: `bin/label-studio prepare` (its own virtualenv, built once per
machine and version), then `label-studio start` on 127.0.0.1 and a free port, on a copy of the
migrated empty sqlite database (a start in seconds instead of a minute of migrations).

The first user is created by `label-studio start --username/--password`. Its API token is a personal
access token, obtained as a user does in the browser: log in, then create one (POST /api/token/).
Label Studio 1.23 turns legacy tokens off for new organisations (a legacy token gets 401 "legacy
token authentication has been disabled"); `--enable-legacy-api-token` would turn them back on, but
personal access tokens are what a new installation hands reviewers and scripts, so the tests use them.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bin" / "label-studio"
HOST = "127.0.0.1"
USER, PASSWORD = "reviewer@autotag.test", "review-pass-1234"


@dataclass
class LabelStudioServer:
    url: str
    token: str = field(repr=False)
    log_path: Path = field(repr=False)
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    startup_s: float = 0.0
    prepare_s: float = 0.0

    def env(self) -> dict[str, str]:
        return {"AUTOTAG_LABEL_STUDIO_URL": self.url, "AUTOTAG_LABEL_STUDIO_TOKEN": self.token}

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def prepare() -> tuple[Path, float]:
    """The folder holding the virtualenv and the template database (built on first use)."""
    started = time.monotonic()
    out = subprocess.run([str(SCRIPT), "prepare"], capture_output=True, text=True, timeout=1200)
    if out.returncode != 0:
        raise RuntimeError(f"bin/label-studio prepare failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1]), time.monotonic() - started


def start_label_studio(workdir: Path, timeout_s: float = 120.0) -> LabelStudioServer:
    home, prepare_s = prepare()
    data = workdir / "data"
    shutil.copytree(home / "template-data", data)
    port, log_path = free_port(), workdir / "label-studio.log"
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "DJANGO_DB": "sqlite",
        "LATEST_VERSION_CHECK": "false",  # no call to PyPI, no usage analytics
        "COLLECT_ANALYTICS": "false",
    }
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(home / "venv" / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", HOST,
             "--port", str(port), "--data-dir", str(data), "--username", USER, "--password", PASSWORD],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    server = LabelStudioServer(f"http://{HOST}:{port}", "", log_path, proc, prepare_s=prepare_s)
    try:
        _wait_healthy(server, proc, timeout_s)
        server.startup_s = time.monotonic() - started
        server.token = personal_access_token(server.url, USER, PASSWORD)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_healthy(server: LabelStudioServer, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Label Studio exited with {proc.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/health", timeout=2).ok:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Label Studio not healthy at {server.url} after {timeout_s:.0f} s:\n{server.log_tail()}")


def login(url: str, user: str = USER, password: str = PASSWORD) -> requests.Session:
    """A browser-like session logged in to Label Studio (CSRF cookie and header set)."""
    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=30)
    answer = session.post(
        f"{url}/user/login/",
        data={"email": user, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{url}/user/login/"},
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"Label Studio login failed: HTTP {answer.status_code}")
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"], "Referer": url})
    return session


def personal_access_token(url: str, user: str = USER, password: str = PASSWORD) -> str:
    answer = login(url, user, password).post(f"{url}/api/token/", timeout=30)
    answer.raise_for_status()
    return answer.json()["token"]
