"""`knlocal burst`: create users in a burst, follow each operation to its end, report and plot.

The modules: :mod:`.model` (what a burst is), :mod:`.driver` (sending and following),
:mod:`.report` (the figures), :mod:`.stores` (what the stores say afterwards), :mod:`.plot`
(the PNG) and :mod:`.command` (the `knlocal burst` command). The names below are the ones
callers use (tests, bench/).
"""

from knuser_tools.burst.command import add_parser, run_burst, run_command, runtime_under_plan
from knuser_tools.burst.driver import Burst
from knuser_tools.burst.model import LOCAL_ADMIN, LOCAL_INGRESS, BurstConfig, Operation
from knuser_tools.burst.plot import plot
from knuser_tools.burst.report import BurstResult, machine_info, summarize, summary_text
from knuser_tools.burst.stores import check_stores

__all__ = [
    "LOCAL_ADMIN",
    "LOCAL_INGRESS",
    "Burst",
    "BurstConfig",
    "BurstResult",
    "Operation",
    "add_parser",
    "check_stores",
    "machine_info",
    "plot",
    "run_burst",
    "run_command",
    "runtime_under_plan",
    "summarize",
    "summary_text",
]
