"""knlocal/settings.py: the read timeout every listener applies (issue 11)."""

import pytest

from knlocal.errors import ConfigError
from knlocal.settings import Settings


def test_read_timeout_defaults_to_60_seconds_and_reads_its_variable() -> None:
    assert Settings.from_env({}).read_timeout == 60
    assert Settings.from_env({"READ_TIMEOUT_SECONDS": "5"}).read_timeout == 5


@pytest.mark.parametrize("raw", ["0", "-3", "soon"])
def test_read_timeout_must_be_a_positive_whole_number(raw: str) -> None:
    with pytest.raises(ConfigError, match="READ_TIMEOUT_SECONDS"):
        Settings.from_env({"READ_TIMEOUT_SECONDS": raw})
