"""knlocal/cli.py: commands other packages add through the `knlocal.commands` entry points.

The entry points are real: a `*.dist-info` folder on `sys.path`, as pip installs one, read by
importlib.metadata as it reads every installed package.
"""

import sys
from pathlib import Path

import pytest

from knlocal.cli import COMMANDS_GROUP, main

PLUGIN = """
def register(commands):
    parser = commands.add_parser("hello", help="say hello")
    parser.add_argument("--code", type=int, default=7)
    parser.set_defaults(handler=lambda args: args.code)
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path where :func:`install` puts packages with entry points."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def install(folder: Path, name: str, entry_points: str) -> None:
    info = folder / f"{name}-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[{COMMANDS_GROUP}]\n{entry_points}\n")


def test_an_installed_command_is_run_with_its_handler(installed: Path) -> None:
    (installed / "hello_plugin.py").write_text(PLUGIN)
    install(installed, "hello_plugin", "hello = hello_plugin:register")
    assert main(["hello"]) == 7
    assert main(["hello", "--code", "3"]) == 3
    sys.modules.pop("hello_plugin", None)


def test_a_command_that_fails_to_load_is_left_out_with_a_warning(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install(installed, "broken_plugin", "broken = no_such_module_here:register")
    with pytest.raises(SystemExit):
        main(["broken"])  # not a command: argparse refuses it
    assert "command 'broken' (no_such_module_here:register) left out" in capsys.readouterr().err


def test_the_applications_burst_command_is_installed() -> None:
    """pyproject.toml's entry point: `knlocal burst` is knuser_tools', and knlocal imports none
    of it."""
    with pytest.raises(SystemExit) as exit_:
        main(["burst", "--help"])
    assert exit_.value.code == 0


def test_knlocal_imports_nothing_of_the_application() -> None:
    """Neither the functions nor their tooling: the runtime knows no application."""
    knlocal = Path(__file__).resolve().parents[2] / "knlocal"
    importing = [
        f"{path.relative_to(knlocal)}: {line.strip()}"
        for path in knlocal.rglob("*.py")
        for line in path.read_text().splitlines()
        if line.strip().startswith(
            ("import functions", "from functions", "import knuser_tools", "from knuser_tools")
        )
    ]
    assert importing == []
