"""knlocal/appconfig.py: what the runtime runs is the application's to say ([tool.knlocal])."""

import json
from pathlib import Path

import pytest

from knlocal.appconfig import application_settings
from knlocal.errors import ConfigError
from knlocal.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_project_names_its_wsgi_app_gunicorn_settings_and_correlation_extensions() -> None:
    settings = Settings.from_env({}, manifests=str(ROOT))
    assert settings.wsgi_app == "functions.wsgi:create_app()"
    assert settings.gunicorn_config == "python:functions.gunicorn_conf"
    assert settings.correlation_extensions == ("operationid",)


def test_the_instance_command_is_the_images_cmd() -> None:
    """The runtime runs what the image runs: [tool.knlocal] and the Dockerfile's CMD agree."""
    dockerfile = (ROOT / "Dockerfiles" / "functions.Dockerfile").read_text()
    [cmd] = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    settings = Settings.from_env({}, manifests=str(ROOT))
    assert json.loads(cmd.removeprefix("CMD ")) == [
        "gunicorn",
        "-c",
        settings.gunicorn_config,
        settings.wsgi_app,
    ]


def test_the_environment_overrides_the_application(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.knlocal]\nwsgi-app = "app:make()"\ncorrelation-extensions = ["a", "b"]\n'
    )
    settings = Settings.from_env({"KNLOCAL_WSGI_APP": "other:app"}, manifests=str(tmp_path))
    assert settings.wsgi_app == "other:app"
    assert settings.correlation_extensions == ("a", "b")
    env = {"MANIFESTS": str(tmp_path), "KNLOCAL_CORRELATION_EXTENSIONS": "tenant, requestid"}
    assert Settings.from_env(env).correlation_extensions == ("tenant", "requestid")


def test_without_a_pyproject_the_runtime_knows_no_application(tmp_path: Path) -> None:
    assert application_settings(tmp_path) == {}
    settings = Settings.from_env({}, manifests=str(tmp_path))
    assert (settings.wsgi_app, settings.gunicorn_config) == ("", "")
    assert settings.correlation_extensions == ()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('wsgi = "app:make()"', "has 'wsgi'; expected one of wsgi-app"),
        ("wsgi-app = 3", "wsgi-app must be a string; found 3"),
        ('correlation-extensions = "operationid"', "must be a list of strings"),
    ],
)
def test_a_wrong_table_says_what_was_expected(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.knlocal]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        application_settings(tmp_path)


def test_a_pyproject_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.knlocal\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        application_settings(tmp_path)
