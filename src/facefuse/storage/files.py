"""Files that are either wholly there or not there at all, whatever moment the process dies."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def write_atomic(path: Path, data: bytes) -> None:
    """Write data to path so that readers (and a crash) see the old file, or all of the new one.

    Temp file in the same directory, fsync, rename over the target, fsync the directory.
    The temp file is named `.<name>.<random>.tmp`; a kill -9 can leave one behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make renames and new names in directory durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_temp_file(path: Path) -> bool:
    """A leftover of an interrupted write_atomic (or one still being written)."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)
