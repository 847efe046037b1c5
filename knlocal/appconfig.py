"""The application's part of the settings: `[tool.knlocal]` in its pyproject.toml.

What the runtime runs is the application's to say, not the runtime's: the command of every
Knative Service's container (the image's CMD), and the CloudEvents extensions that correlate the
runtime's log lines with the application's. They are read from the pyproject.toml beside the
manifests (the MANIFESTS folder); the environment still overrides them (knlocal/settings.py).
"""

import tomllib
from pathlib import Path
from typing import Any

from knlocal.errors import ConfigError

#: Keys of `[tool.knlocal]` → the Settings field each sets.
KEYS = {
    "wsgi-app": "wsgi_app",
    "gunicorn-config": "gunicorn_config",
    "correlation-extensions": "correlation_extensions",
}


def application_settings(folder: Path) -> dict[str, Any]:
    """The settings `<folder>/pyproject.toml` gives in `[tool.knlocal]` (none if it has none).

    :raises ConfigError: the file is not TOML, or the table has a key not in :data:`KEYS` or a
        value of the wrong type.
    """
    path = folder / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        table = tomllib.loads(path.read_text()).get("tool", {}).get("knlocal", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise ConfigError(
                f"{path}: [tool.knlocal] has {key!r}; expected one of {', '.join(KEYS)}"
            )
        if key == "correlation-extensions":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{path}: {key} must be a list of strings; found {value!r}")
            values[KEYS[key]] = ",".join(value)
        elif isinstance(value, str):
            values[KEYS[key]] = value
        else:
            raise ConfigError(f"{path}: {key} must be a string; found {value!r}")
    return values
