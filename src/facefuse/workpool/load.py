"""The load of a pool as its work processes see it: how many jobs are running or waiting,
and on which cores the pool runs. The pool writes the count; each work process is handed
the object at its start and reads it (facefuse.parallel asks `spare()` per piece)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes
    from multiprocessing.context import BaseContext


class PoolLoad:
    """Jobs admitted to a pool (running or waiting), in shared memory, and the pool's cores.

    Made by the pool with `shared(context, cores)`; it crosses to a work process when the
    process is spawned (the shared value cannot be pickled later). `alone(cores)` is one
    with a count of its own, for a process without a pool."""

    def __init__(self, admitted: ctypes.c_int, cores: frozenset[int]) -> None:
        self._admitted = admitted  # a ctypes int: shared memory, or a plain one
        self.cores = cores  # a work process may be pinned to one of them; its helper may use them all

    @classmethod
    def shared(cls, context: BaseContext, cores: set[int] | frozenset[int]) -> PoolLoad:
        return cls(context.RawValue("i", 0), frozenset(cores))

    @classmethod
    def alone(cls, cores: set[int] | frozenset[int] = frozenset()) -> PoolLoad:
        import ctypes

        return cls(ctypes.c_int(0), frozenset(cores))

    @property
    def admitted(self) -> int:
        return int(self._admitted.value)

    @admitted.setter
    def admitted(self, count: int) -> None:
        self._admitted.value = count

    def spare(self) -> bool:
        """Whether a job may take a second core: the jobs running or waiting are at most half
        as many as the cores, so each has one to itself and one to share. A lone request's
        job takes the idle one; under load no job does."""
        return 2 * self._admitted.value <= len(self.cores)
