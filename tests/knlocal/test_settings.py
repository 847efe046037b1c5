"""knlocal/settings.py: every setting read in one place, the flags' defaults included."""

from pathlib import Path

import pytest

from knlocal.cli import main
from knlocal.errors import ConfigError
from knlocal.settings import Settings


def test_read_timeout_defaults_to_60_seconds_and_reads_its_variable() -> None:
    assert Settings.from_env({}).read_timeout == 60
    assert Settings.from_env({"READ_TIMEOUT_SECONDS": "5"}).read_timeout == 5


@pytest.mark.parametrize("raw", ["0", "-3", "soon"])
def test_read_timeout_must_be_a_positive_whole_number(raw: str) -> None:
    with pytest.raises(ConfigError, match="READ_TIMEOUT_SECONDS"):
        Settings.from_env({"READ_TIMEOUT_SECONDS": raw})


def test_faults_plan_reads_its_variable_and_defaults_to_none() -> None:
    assert Settings.from_env({}).faults is None
    assert Settings.from_env({"FAULTS": "docs/faults-example.yaml"}).faults == Path(
        "docs/faults-example.yaml"
    )


def test_command_line_defaults_come_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The flags' defaults are the settings read from the environment: one reader, so `--help`
    # shows what a run without flags would use.
    monkeypatch.setenv("INGRESS_PORT", "18123")
    monkeypatch.setenv("BROKER", "nats")
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "public API port (18123)" in text
    assert "(env BROKER; nats)" in text


def test_an_invalid_variable_stops_the_command_with_its_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INGRESS_PORT", "eighty")
    assert main(["status"]) == 2
    assert "INGRESS_PORT" in capsys.readouterr().err
