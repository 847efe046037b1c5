"""Print pyproject.toml's requirement specifiers for the distributions named on the command line.

The function image installs only what `functions/` imports, not the local runtime's dependencies
(kubernetes, aiohttp, kafka-python, …), with the versions pyproject.toml pins: one source of
truth for versions, and a name that is missing there fails the build instead of going unpinned.

Usage: python3 requirements.py pyproject.toml NAME… > requirements.txt
"""

import re
import sys
import tomllib


def _name(requirement: str) -> str:
    # PEP 503 normalisation: "PyYAML" and "pyyaml" are the same distribution.
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def main(pyproject: str, names: list[str]) -> int:
    with open(pyproject, "rb") as file:
        declared = {_name(r): r for r in tomllib.load(file)["project"]["dependencies"]}
    missing = [n for n in names if _name(n) not in declared]
    if missing:
        print(
            f"requirements.py: {', '.join(missing)} not in [project] dependencies of {pyproject};"
            " add it there or drop it from FUNCTION_DEPS in Dockerfiles/functions.Dockerfile",
            file=sys.stderr,
        )
        return 1
    print("\n".join(declared[_name(n)] for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
