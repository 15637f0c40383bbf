"""facefuse.parallel: pieces of one job on a spare core, or in turn when none is spare."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from facefuse import parallel


def _thread_name() -> str:
    return threading.current_thread().name


def test_a_piece_runs_here_unless_a_core_is_spare(spare_core: bool) -> None:
    ran_on = parallel.start(_thread_name).result()
    assert (ran_on != threading.current_thread().name) == spare_core


def test_a_pieces_error_is_raised_where_its_result_is_asked_for(spare_core: bool) -> None:
    pending = parallel.start(int, "not a number")
    with pytest.raises(ValueError):
        pending.result()


@pytest.mark.parametrize("length", [0, 1, 2, 7])
def test_halves_cover_every_row_once(spare_core: bool, length: int) -> None:
    seen = np.zeros(length, int)

    def mark(rows: slice) -> None:
        seen[rows] += 1

    parallel.in_halves(mark, length)
    assert (seen == 1).all()


def test_a_piece_that_waits_for_one_queued_behind_it_fails_instead_of_hanging() -> None:
    parallel.use_spare_cores(lambda: True)
    try:
        outer = parallel.start(lambda: parallel.start(_thread_name).result())
        with pytest.raises(RuntimeError, match="queued behind"):
            outer.result()
    finally:
        parallel.use_spare_cores(lambda: False)


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs Linux and two CPUs"
)
def test_the_helper_reaches_the_cores_given_though_the_caller_is_pinned() -> None:
    cores = os.sched_getaffinity(0)
    seen: list[set[int]] = []

    def pinned_caller() -> None:
        os.sched_setaffinity(0, {min(cores)})
        parallel.use_spare_cores(lambda: True, cores)
        try:
            parallel._helper = None  # a fresh helper, started by this pinned thread
            seen.append(parallel.start(os.sched_getaffinity, 0).result())
        finally:
            parallel.use_spare_cores(lambda: False)

    thread = threading.Thread(target=pinned_caller)
    thread.start()
    thread.join()
    assert seen == [cores]
