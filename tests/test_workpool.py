"""The work pool with real processes: admission, deadlines and crashes (no HTTP)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from facefuse.errors import Err, FacefuseError
from facefuse.workpool import WorkPool


def run(pool: WorkPool, fn, *args, idempotent: bool = False):
    return asyncio.run(pool.run(fn, *args, idempotent=idempotent))


@pytest.fixture()
def pool():
    work = WorkPool(1, 1, deadline=20)
    yield work
    work.shutdown()


def test_jobs_run_in_another_process(pool: WorkPool) -> None:
    assert run(pool, os.getpid) != os.getpid()
    assert pool.admitted == 0


def test_a_job_that_kills_its_process_answers_process_error_and_the_pool_recovers(pool: WorkPool) -> None:
    first = run(pool, os.getpid)
    for idempotent in (False, True):  # tried once, or twice: both attempts die
        with pytest.raises(FacefuseError) as caught:
            run(pool, os._exit, 3, idempotent=idempotent)
        assert caught.value.error is Err.PROCESS_ERROR
    assert run(pool, os.getpid) not in (first, os.getpid())  # a fresh process
    assert pool.admitted == 0


def test_errors_cross_the_pipe_with_their_code(pool: WorkPool) -> None:
    with pytest.raises(FacefuseError) as caught:
        run(pool, _raise_template_not_found)
    assert caught.value.error is Err.TEMPLATE_NOT_FOUND and caught.value.detail == "nosuch"


def test_a_full_pool_refuses_and_a_deadline_releases_nothing_early() -> None:
    work = WorkPool(1, 0, deadline=0.2)
    try:
        async def scenario() -> None:
            slow = asyncio.create_task(work.run(time.sleep, 1.0))
            await asyncio.sleep(0.05)
            with pytest.raises(FacefuseError) as busy:
                await work.run(os.getpid)
            assert busy.value.error is Err.SERVER_BUSY
            with pytest.raises(FacefuseError) as late:
                await slow
            assert late.value.error is Err.PROCESS_TIMEOUT
            assert work.admitted == 1  # the job still runs: its place is not given away
            for _ in range(100):
                if work.admitted == 0:
                    break
                await asyncio.sleep(0.05)
            assert work.admitted == 0

        asyncio.run(scenario())
    finally:
        work.shutdown()


def _raise_template_not_found() -> None:
    raise FacefuseError(Err.TEMPLATE_NOT_FOUND, "nosuch")


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="Linux pipes only")
def test_a_whole_job_and_answer_fit_in_the_pipes(pool: WorkPool) -> None:
    """Without 1 MB pipes a 0.5 MB answer crossed in 64 KB turns, each waiting for the other
    process to be scheduled: ~10 % of both cores sat idle at 2 workers."""
    import fcntl

    upload = os.urandom(600_000)
    assert run(pool, bytes, upload) == upload  # big payloads cross both ways intact
    executor = pool._current()
    for queue in (executor._call_queue, executor._result_queue):
        assert fcntl.fcntl(queue._writer.fileno(), fcntl.F_GETPIPE_SZ) >= 1024 * 1024
