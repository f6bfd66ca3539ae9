"""Every Dagster resource of the code location, and nothing else.

Resources are thin config holders: they carry the run configuration Dagster records and hand the
work to pure code (lake paths, the MLflow tracking store).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from dagster_autotag.settings import autotag_home
from dagster_autotag.train.registry import default_artifact_root, default_tracking_uri


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
        return self.tracking_uri or default_tracking_uri()

    @contextmanager
    def run(self, run_name: str, tags: dict[str, str] | None = None) -> Iterator[object]:
        import mlflow

        mlflow.set_tracking_uri(self.uri())
        if mlflow.get_experiment_by_name(self.experiment) is None:
            location = default_artifact_root() if self.uri().startswith("sqlite:") else None
            mlflow.create_experiment(self.experiment, artifact_location=location)
        mlflow.set_experiment(self.experiment)
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
