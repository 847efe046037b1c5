"""tools/zipkin.sh: the Zipkin server it starts listens on loopback only (issue 12).

Zipkin 3's Armeria server listens on every interface by default; the script binds its one port
to 127.0.0.1. This reads the kernel's own list of listening sockets (`ss -ltnp`) for the
server's pid: every socket it listens on, the Armeria admin service's included, is loopback.
"""

import re
import subprocess
from pathlib import Path

from tests.servers import require_server

ROOT = Path(__file__).resolve().parents[2]


def test_zipkin_listens_on_127_0_0_1_only() -> None:
    status = subprocess.run(
        ["bash", "tools/zipkin.sh", "status"], cwd=ROOT, capture_output=True, text=True
    )
    require_server("Zipkin (tools/zipkin.sh)", status.returncode == 0, "run `make zipkin`")
    pid = (ROOT / ".run" / "zipkin.pid").read_text().strip()
    listening = subprocess.run(
        ["ss", "-Hltnp"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    mine = [line.split()[3] for line in listening if f"pid={pid}," in line]
    assert mine, f"Zipkin (pid {pid}) listens on no TCP port: {listening}"
    hosts = {re.sub(r":\d+$", "", address) for address in mine}
    assert hosts <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, mine
    assert {address.rsplit(":", 1)[1] for address in mine} == {"9411"}, mine
