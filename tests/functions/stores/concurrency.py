"""Racing callers: the concurrent duplicate deliveries a store must survive.

Kept light on imports: every process of :func:`race_in_processes` imports this module afresh.
"""

import multiprocessing
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any, TypeVar

from functions.settings import Settings
from functions.stores import OperationStore, open_table

T = TypeVar("T")


def race(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls in as many threads, released together by a barrier.

    :return: each call's result, in the order of `calls`.
    """
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def race_in_processes(racer: Callable[[int, Barrier], T], count: int) -> list[T]:
    """Run `racer(index, barrier)` in `count` new processes, as many instances of a service.

    Processes are spawned, not forked, so none inherits the caller's connections.

    :param racer: a picklable callable (a module-level function, or a partial of one).
    :return: each racer's result, by index.
    :raises AssertionError: a racer raised; with its traceback.
    """
    context = multiprocessing.get_context("spawn")
    # The timeout turns a racer that died before the barrier into an error, not a hang.
    barrier = context.Barrier(count, timeout=120)
    results: Queue[tuple[int, Any, str | None]] = context.Queue()
    processes = [
        context.Process(target=_run_racer, args=(racer, index, barrier, results))
        for index in range(count)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = sorted((results.get(timeout=180) for _ in processes), key=lambda o: o[0])
    finally:
        for process in processes:
            process.join(timeout=30)
    errors = [error for _, _, error in outcomes if error]
    assert not errors, f"{len(errors)} racer(s) failed; the first:\n{errors[0]}"
    return [result for _, result, _ in outcomes]


def _run_racer(
    racer: Callable[[int, Barrier], Any],
    index: int,
    barrier: Barrier,
    results: "Queue[tuple[int, Any, str | None]]",
) -> None:
    try:
        results.put((index, racer(index, barrier), None))
    except BaseException:
        results.put((index, None, traceback.format_exc()))


def create_then_finish(
    settings: Settings, op_id: str, index: int, barrier: Barrier
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """One instance of the operation service racing the others on one id.

    All create the operation at once, then all finish it at once: odd indexes complete it,
    even ones fail it.

    :return: the record `create` returned, the record the finish returned, and whether it changed.
    """
    operations = OperationStore(open_table(settings, "operations"))
    barrier.wait()
    created = operations.create(op_id, "user.create", {"name": f"process {index}"})
    barrier.wait()
    if index % 2:
        transition = operations.complete(op_id, {"tag": str(index)})
    else:
        transition = operations.fail(op_id, f"reason {index}")
    assert transition is not None, f"operation {op_id} vanished"
    return created, transition.record, transition.changed
