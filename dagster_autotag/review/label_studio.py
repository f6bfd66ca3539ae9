"""A small HTTP client of Label Studio's REST API (pure: no Dagster), with `requests`.

Why not `label-studio-sdk`: installing it into the project's venv would downgrade numpy (2.4 → 2.2,
through its opencv-python-headless 4.12 pin) and add black, isort, nltk, Faker and requests-mock to
the runtime; the handful of calls below (projects, import, tasks, export, users) are stable, plain JSON.

Tokens: Label Studio ≥ 1.23 gives new organisations personal access tokens (JWT refresh tokens) and
disables legacy tokens. A token that looks like a JWT is exchanged at /api/token/refresh/ for a
short-lived access token (`Authorization: Bearer`, renewed on 401); anything else is sent as a legacy
token (`Authorization: Token`), for servers where an admin kept those on. The token is never put
into an error message, a repr or a log line.
"""

import os
from dataclasses import dataclass, field

import requests

URL_ENV, TOKEN_ENV = "AUTOTAG_LABEL_STUDIO_URL", "AUTOTAG_LABEL_STUDIO_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_S = 30.0
PAGE_SIZE = 500


class LabelStudioError(RuntimeError):
    """Label Studio is unreachable or refused a request (the message says which, never the token)."""


@dataclass
class LabelStudio:
    url: str
    token: str = field(repr=False)
    timeout_s: float = TIMEOUT_S
    _access: str | None = field(default=None, repr=False)
    _session: requests.Session = field(default_factory=requests.Session, repr=False)

    @classmethod
    def from_env(cls, url: str = "", token_env: str = TOKEN_ENV) -> "LabelStudio":
        token = os.environ.get(token_env, "")
        if not token:
            raise LabelStudioError(
                f"{token_env} is not set: create a personal access token in Label Studio "
                "(Account & Settings → Personal Access Token) and export it"
            )
        return cls((url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/"), token)

    # --- HTTP -----------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self._send(method, path, self._auth_header(), **kwargs)
        if response.status_code == 401 and self._is_jwt():  # the access token expired: renew once
            self._access = None
            response = self._send(method, path, self._auth_header(), **kwargs)
        if not response.ok:
            raise LabelStudioError(f"Label Studio {method} {path} → HTTP {response.status_code}: {_detail(response)}")
        return response

    def json(self, method: str, path: str, **kwargs):
        return self.request(method, path, **kwargs).json()

    def _send(self, method: str, path: str, headers: dict, **kwargs) -> requests.Response:
        try:
            return self._session.request(method, f"{self.url}{path}", headers=headers, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise LabelStudioError(
                f"Label Studio at {self.url} is not reachable ({type(exc).__name__}); is it running? "
                f"(`make label-studio`, or set {URL_ENV})"
            ) from None  # the chained exception could carry request headers

    def _is_jwt(self) -> bool:
        return self.token.count(".") == 2 and self.token.startswith("eyJ")

    def _auth_header(self) -> dict[str, str]:
        if not self._is_jwt():
            return {"Authorization": f"Token {self.token}"}
        if self._access is None:
            response = self._send("POST", "/api/token/refresh/", {}, json={"refresh": self.token})
            if not response.ok:
                raise LabelStudioError(
                    f"Label Studio refused the personal access token in {TOKEN_ENV} "
                    f"(HTTP {response.status_code}): create a new one in Account & Settings"
                )
            self._access = response.json()["access"]
        return {"Authorization": f"Bearer {self._access}"}

    # --- API ------------------------------------------------------------------------------------
    def check(self) -> None:
        """Raises LabelStudioError unless the server answers and accepts the token."""
        self.json("GET", "/api/current-user/whoami")

    def find_project(self, title: str) -> int | None:
        found = [p for p in self._all("/api/projects/", {"title": title}) if p["title"] == title]
        return int(found[0]["id"]) if found else None

    def ensure_project(self, title: str, label_config: str, description: str = "") -> int:
        """The project with this title (its labelling config updated when it differs), or a new one."""
        found = [p for p in self._all("/api/projects/", {"title": title}) if p["title"] == title]
        if not found:
            body = {"title": title, "label_config": label_config, "description": description}
            return int(self.json("POST", "/api/projects/", json=body)["id"])
        project = found[0]
        if project.get("label_config") != label_config:
            self.json("PATCH", f"/api/projects/{project['id']}/", json={"label_config": label_config})
        return int(project["id"])

    def import_tasks(self, project: int, tasks: list[dict]) -> list[int]:
        """Creates the tasks (with their predictions); returns their ids in the order given."""
        if not tasks:
            return []
        answer = self.json("POST", f"/api/projects/{project}/import", params={"return_task_ids": "true"}, json=tasks)
        ids = [int(i) for i in answer.get("task_ids", [])]
        if len(ids) != len(tasks):
            raise LabelStudioError(f"Label Studio created {len(ids)} of {len(tasks)} tasks in project {project}")
        return ids

    def tasks(self, project: int) -> list[dict]:
        """Every task of the project (id, data, annotations, …), page by page."""
        out, page = [], 1
        while True:
            answer = self.json(
                "GET", "/api/tasks/", params={"project": project, "page": page, "page_size": PAGE_SIZE, "fields": "all"}
            )
            batch = answer["tasks"] if isinstance(answer, dict) else answer
            out.extend(batch)
            total = answer.get("total", len(out)) if isinstance(answer, dict) else len(out)
            if len(batch) < PAGE_SIZE or len(out) >= total:  # asking past the last page is a 404
                return out
            page += 1

    def annotated_tasks(self, project: int) -> list[dict]:
        """Tasks with at least one annotation, with their annotations (Label Studio's JSON export)."""
        return self.json("GET", f"/api/projects/{project}/export", params={"exportType": "JSON"})

    def annotate(self, task: int, result: list[dict]) -> int:
        """An annotation as a reviewer submits it in the editor (used by tests and scripts)."""
        return int(self.json("POST", f"/api/tasks/{task}/annotations/", json={"result": result})["id"])

    def users(self) -> dict[int, str]:
        """user id → email (annotations name their annotator by id)."""
        answer = self.json("GET", "/api/users/")
        rows = answer["results"] if isinstance(answer, dict) else answer
        return {int(u["id"]): u.get("email") or u.get("username") or str(u["id"]) for u in rows}

    def _all(self, path: str, params: dict) -> list[dict]:
        answer = self.json("GET", path, params={**params, "page_size": PAGE_SIZE})
        return answer["results"] if isinstance(answer, dict) else answer


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("validation_errors") or body)[:300]
    return str(body)[:300]
