"""The messages between the HTTP process and a work process: pickled payloads framed by an
8-byte big-endian length, over a pair of pipes widened to hold a whole message.

The framing lets the event loop use the pipes without ever blocking: a message larger
than the pipe goes in as the other side reads it, and one coming out is gathered as it
arrives (take_frame). A work process itself reads and writes blocking (read_exactly)."""

from __future__ import annotations

import os
import select
import struct
import time

PIPE_BYTES = 1024 * 1024
HEADER = struct.Struct("!Q")


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def whole_frame(chunk: bytes) -> bool:
    """Whether `chunk` is exactly one message: its payload can then be used in place."""
    return len(chunk) >= HEADER.size and len(chunk) == HEADER.size + HEADER.unpack_from(chunk)[0]


def take_frame(received: bytearray) -> bytes | None:
    """The first whole message in `received`, taken out of it; None until one has come."""
    if len(received) < HEADER.size:
        return None
    end = HEADER.size + HEADER.unpack_from(received)[0]
    if len(received) < end:
        return None
    message = bytes(received[HEADER.size : end])
    del received[:end]
    return message


def read_frame(fd: int) -> bytes | None:
    """The next message's payload from a blocking fd, or None at end of file."""
    header = read_exactly(fd, HEADER.size)
    if header is None:
        return None
    return read_exactly(fd, HEADER.unpack(header)[0])


def read_exactly(fd: int, size: int) -> bytes | None:
    """size bytes from a blocking fd, or None at end of file."""
    if size == 0:
        return b""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, PIPE_BYTES))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def write_all(fd: int, message: bytes) -> None:
    """The whole message into a blocking fd."""
    view = memoryview(message)
    while view:
        view = view[os.write(fd, view) :]


def send_waiting(fd: int, message: bytes) -> None:
    """The whole message into a non-blocking fd, waiting for room as needed (off the event loop)."""
    view = memoryview(message)
    while view:
        select.select([], [fd], [], 60)
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue


def receive_waiting(fd: int, timeout: float) -> bytes:
    """The next message from a non-blocking fd within `timeout` seconds (off the event loop)."""
    received, deadline = bytearray(), time.monotonic() + timeout
    while (message := take_frame(received)) is None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("a work process did not start in time")
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, PIPE_BYTES)
            if not chunk:
                raise RuntimeError("a work process stopped while starting")
            received += chunk
    return message


def widen(fd: int) -> None:
    """Let a whole job or answer fit in a pipe (Linux: 64 KB by default): otherwise a large
    answer crosses in pipe-sized turns, each waiting for the other process to be scheduled."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass
