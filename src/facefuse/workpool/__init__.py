"""A bounded pool of work processes for CPU-bound jobs, in five parts:

- `pool`: the scheduler, `WorkPool` (admission, deadline, which process gets which job,
  recovery when one dies);
- `process`: one work process, the HTTP process's handle on it (pipes read and written
  by the event loop itself, no helper threads) and the loop the process runs;
- `framing`: the messages on the pipes (pickled, length-framed);
- `load`: `PoolLoad`, the pool's load as its work processes read it (facefuse.parallel);
- `tuning`: how a process is set up for compute (single-threaded native libraries, the
  allocator, garbage collection, CPU pinning).
"""

from facefuse.workpool.load import PoolLoad
from facefuse.workpool.pool import WorkPool
from facefuse.workpool.tuning import (
    freeze_startup_objects,
    single_threaded_libraries,
    tune_allocator,
    tune_for_compute,
    usable_cores,
)

__all__ = [
    "PoolLoad",
    "WorkPool",
    "freeze_startup_objects",
    "single_threaded_libraries",
    "tune_allocator",
    "tune_for_compute",
    "usable_cores",
]
