"""The CPU meter attributes the kernel's CPU accounting to process roles (bench/cpu.py)."""

import subprocess
import sys
import time

from bench.cpu import CpuMeter

#: A stand-in for the runtime: it starts, after a pause, a child that burns CPU and exits, as an
#: instance that the autoscaler forks during a burst and retires before the burst ends.
TREE = """
import subprocess, sys, time
time.sleep(0.3)
subprocess.run([sys.executable, "-m", "timeit", "-n", "1", "-r", "1",
                "import time; t = time.process_time()\\nwhile time.process_time() - t < 0.6: pass"])
time.sleep(0.3)
"""


def test_a_child_born_and_gone_during_the_measurement_is_counted_in_its_role() -> None:
    root = subprocess.Popen([sys.executable, "-c", TREE])
    try:
        with CpuMeter(root.pid, interval=0.02) as meter:
            root.wait(timeout=30)
            time.sleep(0.05)
    finally:
        root.kill()
    result = meter.result(completed=3)
    # The child runs `python -m timeit`: its role is named after the module.
    assert result["cpu_ms"]["timeit"] >= 500, result
    assert result["cpu_ms"]["timeit"] <= 1500, result
    assert result["cpu_ms_per_user"]["timeit"] == round(result["cpu_ms"]["timeit"] / 3, 2)
    assert result["cpu_ms"]["runtime"] < 500, result
    assert set(result["cpu_ms"]) == {"runtime", "timeit", "load_generator"}


def test_processes_outside_the_tree_are_not_counted_unless_named() -> None:
    burner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass",
        ]
    )
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
    try:
        with CpuMeter(idle.pid, {"kafka": burner.pid}, interval=0.02) as meter:
            burner.wait(timeout=30)
    finally:
        idle.kill()
        idle.wait()
    result = meter.result(completed=0)
    assert result["cpu_ms"]["kafka"] >= 250, result
    assert result["cpu_ms_per_user"] == {} and result["cpu_ms_per_user_total"] is None
