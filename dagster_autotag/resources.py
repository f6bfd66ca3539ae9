"""Every Dagster resource of the code location, and nothing else.

Resources are thin config holders: they carry the run configuration Dagster records (field names
and defaults are the run config keys) and hand the work to pure code. The export sources build a
pure reader (`reader()`: ingest/landing.py, ingest/hive_client.py) that ingest/raw.py consumes.

Source of the exports, for the code location: AUTOTAG_SOURCE=landing (default; $AUTOTAG_HOME/landing)
or hive (HiveServer2 via pyhive, configured by AUTOTAG_HIVE_* environment variables).
"""

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from dagster_autotag.ingest.landing import LandingExportReader
from dagster_autotag.ingest.source import ExportReader
from dagster_autotag.ingest.tsv_export import MAX_VALUE_BYTES, MAX_VALUE_LINES
from dagster_autotag.settings import SQL_DIR, autotag_home
from dagster_autotag.settings import landing_dir as default_landing_dir
from dagster_autotag.train.registry import configured_tracking_uri, default_artifact_root, default_tracking_uri
from dagster_autotag.train.store import ensure_experiment, open_store

if TYPE_CHECKING:
    from dagster_autotag.ingest.hive_client import HiveExportReader


class LakeResource(dg.ConfigurableResource):
    """Where run outputs go, and the data-quality limits the ingest checks enforce."""

    home: str = ""  # empty: $AUTOTAG_HOME (default ./var), resolved when used
    quarantine_share_limit: float = 0.01  # ERROR above this share of quarantined rows

    def root(self) -> Path:
        return Path(self.home).resolve() if self.home else autotag_home()

    def lake(self) -> Path:
        return self.root() / "lake"


class MlflowResource(dg.ConfigurableResource):
    """A thin resource over mlflow (dagster-mlflow is legacy and pins pandas < 3).

    tracking_uri empty: $AUTOTAG_MLFLOW_TRACKING_URI, else sqlite under $AUTOTAG_HOME/mlflow
    (artifacts in $AUTOTAG_HOME/mlflow/artifacts). Credentials for a real server come from the
    environment variables mlflow itself reads (MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN)."""

    tracking_uri: str = ""
    experiment: str = "autotag"

    def uri(self) -> str:
        """The tracking URI, its store ready for steps that open it at once (train/store.py)."""
        return open_store(self.tracking_uri) if self.tracking_uri else default_tracking_uri()

    def configured_uri(self) -> str:
        """The tracking URI without opening (or creating) its store."""
        return self.tracking_uri or configured_tracking_uri()

    @contextmanager
    def run(self, run_name: str, tags: dict[str, str] | None = None) -> Iterator[object]:
        import mlflow

        uri = self.uri()
        mlflow.set_tracking_uri(uri)
        location = default_artifact_root() if uri.startswith("sqlite:") else None
        mlflow.set_experiment(experiment_id=ensure_experiment(uri, self.experiment, location))
        with mlflow.start_run(run_name=run_name, tags=tags) as active:
            yield active

    def run_url(self, run_id: str) -> str:
        """Link for asset metadata: the server's UI for http(s) stores, else the local store path."""
        import mlflow

        mlflow.set_tracking_uri(self.uri())
        run = mlflow.get_run(run_id)
        if self.uri().startswith("http"):
            return f"{self.uri().rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
        return f"{self.uri()} (experiment {run.info.experiment_id}, run {run_id})"


# --- export sources ------------------------------------------------------------------------------


class ExportSource(dg.ConfigurableResource):
    """Base resource: where the rows of the export tables come from. `reader()` builds the pure
    reader (ingest/source.py's `ExportReader`) that yields one table's rows for one daily partition."""

    def reader(self) -> ExportReader:
        raise NotImplementedError


class LandingExportSource(ExportSource):
    """Hive tsv2 export files under landing/<table>/dt=YYYY-MM-DD/ (ingest/landing.py)."""

    landing_dir: str = ""  # empty: $AUTOTAG_HOME/landing, resolved when used
    quoting: str = "nul"  # "nul" (Hive default) or "csv" (quoting enabled: "…" with "")
    max_value_lines: int = Field(
        default=MAX_VALUE_LINES, description="lines a quoted value may span before its opener counts as unclosed"
    )
    max_value_bytes: int = Field(
        default=MAX_VALUE_BYTES, description="bytes a quoted value may hold before its opener counts as unclosed"
    )

    def root(self) -> Path:
        return Path(self.landing_dir) if self.landing_dir else default_landing_dir()

    def reader(self) -> LandingExportReader:
        return LandingExportReader(
            root=self.root(),
            quoting=self.quoting,
            max_value_lines=self.max_value_lines,
            max_value_bytes=self.max_value_bytes,
        )


class HiveExportSource(ExportSource):
    """The exports from HiveServer2 (pyhive, binary Thrift transport; ingest/hive_client.py).

    The password is hidden from the resource's repr and the reader's; pass it as
    `dg.EnvVar("AUTOTAG_HIVE_PASSWORD")` so Dagster records the variable's name, not its value."""

    host: str = Field(description="HiveServer2 host")
    port: int = Field(default=10000, description="HiveServer2 Thrift port")
    username: str = Field(default="autotag", description="user name sent to HiveServer2")
    password: str | None = Field(
        default=None,
        repr=False,
        description="secret, sent for auth LDAP/CUSTOM only; use EnvVar('AUTOTAG_HIVE_PASSWORD')",
    )
    auth: str = Field(default="NONE", description="hive.server2.authentication: NONE, NOSASL, LDAP or CUSTOM")
    database: str = Field(default="default", description="session database (the export SQL is fully qualified)")
    fetch_size: int = Field(default=10_000, description="rows per fetchmany() and per RawBatch")
    connect_retries: int = Field(
        default=3, description="retries after a failed connection attempt (attempts = 1 + retries)"
    )
    retry_backoff_s: float = Field(
        default=1.0, description="sleep before retry k (1, 2, ...) is retry_backoff_s * 2**(k-1)"
    )
    sql_dir: str = Field(default=str(SQL_DIR), description="directory holding <table>.sql")

    def reader(self) -> "HiveExportReader":
        # imported here: pyhive and thrift stay out of the code location unless Hive is the source
        from dagster_autotag.ingest.hive_client import HiveExportReader

        # the resource's fields are the reader's, by name (a test checks they match)
        return HiveExportReader(**{f.name: getattr(self, f.name) for f in dataclasses.fields(HiveExportReader)})


def _env_or(name: str, default):
    """dg.EnvVar(name) when the variable is set (Dagster records the name, resolves at launch),
    else the default."""
    if os.environ.get(name) in (None, ""):
        return default
    return dg.EnvVar.int(name) if isinstance(default, int) else dg.EnvVar(name)


def hive_source_from_env() -> HiveExportSource:
    """HiveExportSource configured from AUTOTAG_HIVE_* environment variables.

    AUTOTAG_HIVE_HOST is required (resolved when Dagster initialises the resource; it fails there
    if unset). PORT (10000), USER (autotag), AUTH (NONE), DATABASE (default) fall back to the
    defaults; PASSWORD is only wired in when set. Values are EnvVars: outside a Dagster run, call
    `.process_config_and_initialize()` on the result to get a usable instance.
    """
    return HiveExportSource(
        host=dg.EnvVar("AUTOTAG_HIVE_HOST"),
        port=_env_or("AUTOTAG_HIVE_PORT", 10000),
        username=_env_or("AUTOTAG_HIVE_USER", "autotag"),
        password=_env_or("AUTOTAG_HIVE_PASSWORD", None),
        auth=_env_or("AUTOTAG_HIVE_AUTH", "NONE"),
        database=_env_or("AUTOTAG_HIVE_DATABASE", "default"),
    )


def export_source_from_env() -> ExportSource:
    """AUTOTAG_SOURCE=landing (default; AUTOTAG_LANDING_QUOTING, default nul;
    AUTOTAG_LANDING_MAX_VALUE_LINES / _BYTES) or hive (AUTOTAG_HIVE_*)."""
    kind = os.environ.get("AUTOTAG_SOURCE", "landing").strip().lower()
    if kind == "landing":
        return LandingExportSource(
            quoting=os.environ.get("AUTOTAG_LANDING_QUOTING", "nul"),
            max_value_lines=_env_or("AUTOTAG_LANDING_MAX_VALUE_LINES", MAX_VALUE_LINES),
            max_value_bytes=_env_or("AUTOTAG_LANDING_MAX_VALUE_BYTES", MAX_VALUE_BYTES),
        )
    if kind == "hive":
        return hive_source_from_env()
    raise ValueError(f"AUTOTAG_SOURCE must be 'landing' or 'hive', got {kind!r}")


# --- review ----------------------------------------------------------------------------------------


class LabelStudioResource(dg.ConfigurableResource):
    """The Label Studio server reviewers work in (review/label_studio.py talks to it over HTTP).

    url empty: $AUTOTAG_LABEL_STUDIO_URL, else http://127.0.0.1:8080. The token is read from the
    environment variable `token_env` when a client is made, so neither Dagster's run config nor the
    UI ever holds it."""

    url: str = ""
    token_env: str = "AUTOTAG_LABEL_STUDIO_TOKEN"

    def client(self):
        from dagster_autotag.review.label_studio import LabelStudio

        return LabelStudio.from_env(self.url, self.token_env)
