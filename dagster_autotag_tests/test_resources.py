"""The resources: their run-config keys and defaults (runs and launchpad configs depend on them),
and the pure readers the export sources build."""

import dataclasses
from pathlib import Path

import pytest
from pydantic_core import PydanticUndefined

from dagster_autotag import settings
from dagster_autotag.ingest.hive_client import HiveExportReader
from dagster_autotag.ingest.landing import LandingExportReader
from dagster_autotag.resources import (
    HiveExportSource,
    LakeResource,
    LandingExportSource,
    MlflowResource,
    export_source_from_env,
)

REQUIRED = PydanticUndefined


@pytest.mark.parametrize(
    ("resource", "config"),
    [
        (LakeResource, {"home": "", "quarantine_share_limit": 0.01}),
        (MlflowResource, {"tracking_uri": "", "experiment": "autotag"}),
        (
            LandingExportSource,
            {"landing_dir": "", "quoting": "nul", "max_value_lines": 1_000, "max_value_bytes": 8 << 20},
        ),
        (
            HiveExportSource,
            {
                "host": REQUIRED,
                "port": 10000,
                "username": "autotag",
                "password": None,
                "auth": "NONE",
                "database": "default",
                "fetch_size": 10_000,
                "connect_retries": 3,
                "retry_backoff_s": 1.0,
                "sql_dir": str(settings.SQL_DIR),
            },
        ),
    ],
)
def test_config_keys_and_defaults(resource, config):
    assert {name: field.default for name, field in resource.model_fields.items()} == config


def test_hive_reader_carries_every_field_of_its_resource():
    resource = HiveExportSource(
        host="hive.example", port=10001, username="u", password="pw", auth="LDAP", database="ods",
        fetch_size=7, connect_retries=1, retry_backoff_s=0.5, sql_dir="/tmp/sql",
    )  # fmt: skip
    reader = resource.reader()
    assert isinstance(reader, HiveExportReader)
    assert dataclasses.asdict(reader) == {name: getattr(resource, name) for name in HiveExportSource.model_fields}
    assert reader.source_name == "hive"
    # same defaults on both sides
    assert HiveExportSource(host="h").reader() == HiveExportReader(host="h")


def test_landing_reader_resolves_the_default_folder_when_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    resource = LandingExportSource()
    monkeypatch.setenv("AUTOTAG_HOME", str(tmp_path / "home"))
    assert resource.reader() == LandingExportReader(root=tmp_path / "home" / "landing", quoting="nul")
    explicit = LandingExportSource(landing_dir=str(tmp_path / "drop"), quoting="csv").reader()
    assert explicit == LandingExportReader(root=tmp_path / "drop", quoting="csv")
    assert explicit.source_name == "landing"


def test_export_source_from_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AUTOTAG_SOURCE", raising=False)
    monkeypatch.delenv("AUTOTAG_LANDING_QUOTING", raising=False)
    assert export_source_from_env() == LandingExportSource()
    monkeypatch.setenv("AUTOTAG_LANDING_QUOTING", "csv")
    assert export_source_from_env() == LandingExportSource(quoting="csv")
    monkeypatch.setenv("AUTOTAG_LANDING_MAX_VALUE_LINES", "20")
    limited = export_source_from_env().process_config_and_initialize().reader()
    assert (limited.max_value_lines, limited.max_value_bytes) == (20, 8 << 20)
    monkeypatch.delenv("AUTOTAG_LANDING_MAX_VALUE_LINES")
    monkeypatch.setenv("AUTOTAG_SOURCE", " Hive ")
    monkeypatch.setenv("AUTOTAG_HIVE_HOST", "hive.example")
    monkeypatch.setenv("AUTOTAG_HIVE_PORT", "10001")
    hive = export_source_from_env().process_config_and_initialize()
    assert isinstance(hive, HiveExportSource) and (hive.host, hive.port) == ("hive.example", 10001)
    monkeypatch.setenv("AUTOTAG_SOURCE", "s3")
    with pytest.raises(ValueError, match="AUTOTAG_SOURCE must be 'landing' or 'hive'"):
        export_source_from_env()
