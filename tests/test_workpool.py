"""The work pool with real processes: admission, deadlines and crashes (no HTTP).

A job that must still be running when the test looks waits at a Gate (a named pipe the test
opens), so what a test sees never depends on how fast the machine is."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from facefuse.errors import Err, FacefuseError
from facefuse.workpool import PoolLoad, WorkPool


def run(pool: WorkPool, fn, *args, idempotent: bool = False):
    return asyncio.run(pool.run(fn, *args, idempotent=idempotent))


class Gate:
    """An event across processes: a job calling _wait_at(gate.path) blocks until the test
    calls open() (one byte lets one job through). The test holds the pipe open for writing,
    so a job opens it at once and its read waits for a byte."""

    def __init__(self, path) -> None:
        os.mkfifo(path)
        self.path = str(path)
        self._fd = os.open(path, os.O_RDWR)

    def open(self, jobs: int = 1) -> None:
        os.write(self._fd, b"x" * jobs)

    def close(self) -> None:
        os.close(self._fd)


def _wait_at(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 1)
    finally:
        os.close(fd)
    return os.getpid()


async def until(condition, what: str) -> None:
    """Let the event loop run until condition() holds (the bound only stops a hang)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never: {what}")


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


def test_a_full_pool_refuses_and_a_deadline_releases_nothing_early(tmp_path) -> None:
    gate = Gate(tmp_path / "gate")
    work = WorkPool(1, 0, deadline=0.2)
    try:

        async def scenario() -> None:
            held = asyncio.create_task(work.run(_wait_at, gate.path))
            await asyncio.sleep(0)  # run() admits before it first waits
            with pytest.raises(FacefuseError) as busy:
                await work.run(os.getpid)
            assert busy.value.error is Err.SERVER_BUSY
            with pytest.raises(FacefuseError) as late:
                await held  # the job waits at the gate: only the deadline ends this wait
            assert late.value.error is Err.PROCESS_TIMEOUT
            assert work.admitted == 1  # the job still runs: its place is not given away
            gate.open()
            await until(lambda: work.admitted == 0, "the finished job's place given back")

        asyncio.run(scenario())
    finally:
        work.shutdown()
        gate.close()


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


def test_the_event_loop_runs_while_a_job_runs(pool: WorkPool, tmp_path) -> None:
    """The job waits at a gate that only the event loop opens: were the loop held up by the
    job, neither would ever go on."""
    gate = Gate(tmp_path / "gate")

    async def scenario() -> int:
        job = asyncio.create_task(pool.run(_wait_at, gate.path))
        await until(lambda: pool._processes and pool._processes[0].held, "the job in its process")
        gate.open()
        return await job

    try:
        assert asyncio.run(scenario()) != os.getpid()
    finally:
        gate.close()


def test_an_error_in_a_job_crosses_with_its_type_and_the_remote_traceback(pool: WorkPool) -> None:
    with pytest.raises(ValueError) as caught:
        run(pool, int, "not a number")
    assert "int" in str(caught.value.__cause__) and "Traceback" in str(caught.value.__cause__)
    assert run(pool, int, "7") == 7  # the process goes on


def test_a_process_killed_while_idle_is_replaced_before_the_next_job(pool: WorkPool) -> None:
    first = run(pool, os.getpid)
    (victim,) = pool._processes
    os.kill(first, signal.SIGKILL)
    victim.process.join(10)  # dead before the next job is given
    second = run(pool, os.getpid)  # not PROCESS_ERROR: the job went to a fresh process
    assert second not in (first, os.getpid())


def test_a_crash_fails_only_the_job_in_that_process(tmp_path) -> None:
    gate = Gate(tmp_path / "gate")
    work = WorkPool(2, 2, deadline=30)
    try:

        async def scenario() -> None:
            steady = asyncio.create_task(work.run(_wait_at, gate.path))
            await until(lambda: any(p.held for p in work._processes), "the steady job in a process")
            with pytest.raises(FacefuseError) as lost:
                await work.run(os._exit, 3)  # in the other process, while the steady job runs
            assert lost.value.error is Err.PROCESS_ERROR
            gate.open()
            assert await steady not in (os.getpid(), None)

        asyncio.run(scenario())
        assert work.admitted == 0
    finally:
        work.shutdown()
        gate.close()


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


def test_a_busy_process_holds_the_next_idempotent_job_and_a_crash_retries_it(tmp_path) -> None:
    gate = Gate(tmp_path / "gate")
    work = WorkPool(1, 4, deadline=30)
    try:

        async def scenario() -> None:
            crash = asyncio.create_task(work.run(_wait_then_exit, gate.path))
            await until(lambda: work._processes and work._processes[0].held, "the first job in the process")
            queued = asyncio.create_task(work.run(os.getpid, idempotent=True))
            side_effect = asyncio.create_task(work.run(os.getpid))
            await until(lambda: len(work._waiting) + len(work._processes[0].held) == 3, "both jobs handed in")
            (process,) = work._processes
            assert len(process.held) == 2  # the running job and the next, already in its pipe
            assert len(work._waiting) == 1  # a job with side effects waits for a free process
            gate.open()
            with pytest.raises(FacefuseError):
                await crash
            pid = await queued  # lost with the process before it ran: tried again
            assert pid != os.getpid() and await side_effect == pid

        asyncio.run(scenario())
        assert work.admitted == 0
    finally:
        work.shutdown()
        gate.close()


def test_shutdown_from_a_thread_while_a_timed_out_job_still_runs(tmp_path) -> None:
    """As the server's lifespan does it: the loop still runs and still watches the pipes
    of a process whose job outlived its deadline. The job ends only once shutdown has
    closed its job pipe, so it is still running while the loop stops watching."""
    gate = Gate(tmp_path / "gate")
    work = WorkPool(1, 0, deadline=0.2)

    async def scenario() -> int:
        with pytest.raises(FacefuseError) as late:
            await work.run(_wait_at, gate.path)
        assert late.value.error is Err.PROCESS_TIMEOUT
        (process,) = work._processes
        assert process.held  # still running
        stop_taking_jobs = process.stop_taking_jobs

        def stop_then_let_the_job_end() -> None:
            stop_taking_jobs()
            gate.open()

        process.stop_taking_jobs = stop_then_let_the_job_end
        await asyncio.to_thread(work.shutdown)
        await asyncio.sleep(0)  # the loop goes on without the closed pipes
        return process.process.pid

    try:
        pid = asyncio.run(scenario())
    finally:
        gate.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _wait_then_exit(path: str) -> None:
    _wait_at(path)
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


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs Linux and two CPUs"
)
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


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs Linux and two CPUs"
)
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


_load: PoolLoad | None = None  # in a work process: the pool's load, kept by _keep_load


def _keep_load(*, load: PoolLoad) -> None:
    global _load
    _load = load


def _spare_now() -> bool:
    assert _load is not None
    return _load.spare()


def _spare_after(path: str) -> bool:
    _wait_at(path)
    return _spare_now()


def test_a_job_may_take_a_spare_core_while_the_jobs_are_at_most_half_the_cores() -> None:
    load = PoolLoad.alone({0, 1, 2, 3})
    seen = []
    for admitted in range(5):
        load.admitted = admitted
        seen.append(load.spare())
    assert seen == [True, True, True, False, False]


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs Linux and two CPUs"
)
def test_a_lone_job_may_take_a_spare_core_and_none_does_under_load(tmp_path) -> None:
    cores = len(os.sched_getaffinity(0))
    for workers in (1, cores):  # not pinned, pinned
        probe_gate, others_gate = Gate(tmp_path / f"probe{workers}"), Gate(tmp_path / f"others{workers}")
        work = WorkPool(workers, 2 * cores, deadline=30, initializer=_keep_load)
        try:
            work.warm_up(os.getpid)  # every process up
            assert run(work, _spare_now) is True
            assert work.load.cores == frozenset(os.sched_getaffinity(0))

            async def loaded() -> bool:  # as many jobs as cores: none to spare while all are in
                probe = asyncio.create_task(work.run(_spare_after, probe_gate.path))
                others = [asyncio.create_task(work.run(_wait_at, others_gate.path)) for _ in range(cores - 1)]
                await until(lambda: work.admitted == cores, "every job admitted")
                assert work.load.admitted == cores  # what the work processes read
                probe_gate.open()
                spare = await probe  # read while the others are still in, waiting at their gate
                others_gate.open(cores - 1)
                await asyncio.gather(*others)
                return spare

            assert asyncio.run(loaded()) is False
            assert run(work, _spare_now) is True and work.admitted == 0
        finally:
            work.shutdown()
            probe_gate.close()
            others_gate.close()
