"""The work pool with real processes: admission, deadlines and crashes (no HTTP)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from facefuse.errors import Err, FacefuseError
from facefuse.workpool import WorkPool, spare_core


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
    (process,) = pool._processes
    for connection in (process.jobs, process.answers):
        assert fcntl.fcntl(connection.fileno(), fcntl.F_GETPIPE_SZ) >= 1024 * 1024


def test_jobs_and_answers_larger_than_a_pipe_cross_without_blocking_the_loop(pool: WorkPool) -> None:
    upload = os.urandom(5_000_000)  # five pipes full each way: written and read in turns

    async def scenario() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        counting = asyncio.create_task(ticker())
        assert await pool.run(bytes, upload) == upload
        counting.cancel()
        assert ticks > 0  # the event loop kept running meanwhile

    asyncio.run(scenario())


def test_an_error_in_a_job_crosses_with_its_type_and_the_remote_traceback(pool: WorkPool) -> None:
    with pytest.raises(ValueError) as caught:
        run(pool, int, "not a number")
    assert "int" in str(caught.value.__cause__) and "Traceback" in str(caught.value.__cause__)
    assert run(pool, int, "7") == 7  # the process goes on


def test_a_process_killed_while_idle_is_replaced_before_the_next_job(pool: WorkPool) -> None:
    first = run(pool, os.getpid)
    os.kill(first, signal.SIGKILL)
    time.sleep(0.2)
    second = run(pool, os.getpid)  # not PROCESS_ERROR: the job went to a fresh process
    assert second not in (first, os.getpid())


def test_a_crash_fails_only_the_job_in_that_process() -> None:
    work = WorkPool(2, 2, deadline=30)
    try:
        async def scenario() -> None:
            steady = [asyncio.create_task(work.run(_sleep_and_pid, 0.5)) for _ in range(3)]
            await asyncio.sleep(0.1)
            with pytest.raises(FacefuseError) as lost:
                await work.run(os._exit, 3)
            assert lost.value.error is Err.PROCESS_ERROR
            pids = await asyncio.gather(*steady)
            assert all(pid != os.getpid() for pid in pids)

        asyncio.run(scenario())
        assert work.admitted == 0
    finally:
        work.shutdown()


def test_waiting_jobs_run_as_processes_free_up() -> None:
    work = WorkPool(2, 8, deadline=30)
    try:
        async def scenario() -> list[int]:
            return await asyncio.gather(*(work.run(_sleep_and_pid, 0.05) for _ in range(10)))

        pids = asyncio.run(scenario())
        assert len(set(pids)) == 2 and work.admitted == 0
    finally:
        work.shutdown()


def test_warm_up_starts_every_process_and_shutdown_stops_them() -> None:
    work = WorkPool(2, 0, deadline=30)
    work.warm_up(os.getpid)
    pids = [p.process.pid for p in work._processes]
    assert len(pids) == 2 and all(p.process.is_alive() for p in work._processes)
    work.shutdown()
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # gone and reaped
            os.kill(pid, 0)


def test_a_busy_process_holds_the_next_idempotent_job_and_a_crash_retries_it() -> None:
    work = WorkPool(1, 4, deadline=30)
    try:
        async def scenario() -> None:
            crash = asyncio.create_task(work.run(_sleep_then_exit, 0.3))
            await asyncio.sleep(0.05)
            queued = asyncio.create_task(work.run(os.getpid, idempotent=True))
            side_effect = asyncio.create_task(work.run(os.getpid))
            await asyncio.sleep(0.05)
            (process,) = work._processes
            assert len(process.held) == 2  # the running job and the next, already in its pipe
            assert len(work._waiting) == 1  # a job with side effects waits for a free process
            with pytest.raises(FacefuseError):
                await crash
            pid = await queued  # lost with the process before it ran: tried again
            assert pid != os.getpid() and await side_effect == pid

        asyncio.run(scenario())
        assert work.admitted == 0
    finally:
        work.shutdown()


def test_shutdown_from_a_thread_while_a_timed_out_job_still_runs() -> None:
    """As the server's lifespan does it: the loop still runs and still watches the pipes
    of a process whose job outlived its deadline."""
    work = WorkPool(1, 0, deadline=0.2)

    async def scenario() -> int:
        with pytest.raises(FacefuseError) as late:
            await work.run(time.sleep, 1.5)
        assert late.value.error is Err.PROCESS_TIMEOUT
        pid = work._processes[0].process.pid
        await asyncio.to_thread(work.shutdown)
        await asyncio.sleep(0.05)  # the loop goes on without the closed pipes
        return pid

    pid = asyncio.run(scenario())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _sleep_then_exit(seconds: float) -> None:
    time.sleep(seconds)
    os._exit(3)


def _sleep_and_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _cores_of_a_new_thread() -> set[int]:
    import threading

    seen: list[set[int]] = []
    thread = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
    thread.start()
    thread.join()
    return seen[0]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs")
def test_one_worker_per_cpu_each_runs_on_a_cpu_of_its_own_and_a_replacement_takes_the_freed_one() -> None:
    cores = os.sched_getaffinity(0)
    work = WorkPool(len(cores), 0, deadline=30)
    try:
        work.warm_up(os.getpid)
        placed = [os.sched_getaffinity(p.process.pid) for p in work._processes]
        assert all(len(one) == 1 for one in placed) and set().union(*placed) == cores
        # Threads a job starts inherit it (mediapipe's graph threads are started in the job).
        assert run(work, _cores_of_a_new_thread) in placed
        victim = work._processes[0]
        freed = os.sched_getaffinity(victim.process.pid)
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.join(5)

        async def until_replaced() -> set[int]:
            while True:  # the pool notices the death at the next dispatch
                results = await asyncio.gather(*(work.run(_sleep_and_cores, 0.05) for _ in range(len(cores))))
                fresh = [p for p in work._processes if p is not victim]
                if len(fresh) == len(cores):
                    return set().union(*results)

        assert asyncio.run(until_replaced()) == cores
        assert freed in [os.sched_getaffinity(p.process.pid) for p in work._processes if p is not victim]
    finally:
        work.shutdown()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs")
def test_fewer_workers_than_cpus_or_pinning_off_leave_the_scheduler_free() -> None:
    cores = os.sched_getaffinity(0)
    for work in (WorkPool(len(cores) - 1, 0, deadline=30), WorkPool(len(cores), 0, deadline=30, pin_to_cores=False)):
        try:
            work.warm_up(os.getpid)
            assert all(os.sched_getaffinity(p.process.pid) == cores for p in work._processes)
        finally:
            work.shutdown()


def _sleep_and_cores(seconds: float) -> set[int]:
    time.sleep(seconds)
    return os.sched_getaffinity(0)


def _spare_core_midway(seconds: float) -> bool:
    """spare_core() halfway through a job of 2 * seconds: while the jobs beside it still run."""
    time.sleep(seconds)
    spare = spare_core()
    time.sleep(seconds)
    return spare


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs")
def test_a_lone_job_may_take_a_spare_core_and_none_does_under_load() -> None:
    cores = len(os.sched_getaffinity(0))
    for workers in (1, cores):  # not pinned, pinned
        work = WorkPool(workers, 2 * cores, deadline=30)
        try:
            work.warm_up(os.getpid)  # every process up: jobs given at once run at once
            assert run(work, spare_core) is True

            async def loaded() -> list[bool]:  # as many jobs as cores: none to spare while all are in
                return await asyncio.gather(*(work.run(_spare_core_midway, 0.2) for _ in range(cores)))

            seen = asyncio.run(loaded())
            # One worker runs them in turn: the last one, left alone, may take the spare core.
            assert seen == ([False] * cores if workers == cores else [False] * (cores - 1) + [True])
            assert run(work, spare_core) is True and work.admitted == 0
        finally:
            work.shutdown()
    assert spare_core() is False  # outside a work process nothing is spare
