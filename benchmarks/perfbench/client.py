"""The HTTP client the benchmark sends its load with: one keep-alive HTTP/1.1 connection
over a plain socket.

Why not httpx (the service's own dependency): the load generator shares the cores with
the service, so whatever CPU it spends per exchange is taken from the work processes
under load and is part of every latency it measures. Side by side on the same service,
httpx.Client spends several times this client's CPU per exchange and adds that to each
measured request, which moves the floor ratios and the loaded runs the targets are read
from. This client sends a request in one sendmsg (head and body, no joined copy) and reads
the answer straight into one buffer of its Content-Length; it understands only what the
service sends (Content-Length bodies, keep-alive)."""

from __future__ import annotations

import socket
import urllib.parse


class LoopbackClient:
    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self._socket: socket.socket | None = None
        self._pending = b""  # bytes read past the end of the previous answer (none, normally)

    def request(self, method: str, target: str, body: bytes | None = None) -> tuple[int, bytes]:
        """(status, body); a connection the server closed is opened again once."""
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        parts = [(head + "\r\n").encode("ascii")] + ([body] if body else [])
        for attempt in (1, 2):
            connection = self._socket or self._connect()
            self._socket = None
            try:
                _send_all(connection, parts)
                status, keep_alive, data = self._read_answer(connection)
            except (OSError, ValueError):
                connection.close()
                self._pending = b""
                if attempt == 2:
                    raise
                continue
            if keep_alive:
                self._socket = connection
            else:
                connection.close()
            return status, data
        raise AssertionError("unreachable")

    def get(self, url_or_path: str) -> tuple[int, bytes]:
        parts = urllib.parse.urlsplit(url_or_path)
        return self.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> LoopbackClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        connection = socket.create_connection((self.host, self.port), timeout=self.timeout)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _read_answer(self, connection: socket.socket) -> tuple[int, bool, bytes]:
        received = bytearray(self._pending)
        while (end := received.find(b"\r\n\r\n")) < 0:
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            received += chunk
        lines = bytes(received[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise ValueError("an answer without Content-Length")
        length = int(headers["content-length"])
        data = bytearray(length)
        view = memoryview(data)
        already = received[end + 4 :]
        taken = min(len(already), length)
        view[:taken] = already[:taken]
        self._pending = bytes(already[taken:])
        while taken < length:
            count = connection.recv_into(view[taken:])
            if not count:
                raise ConnectionError("the server closed the connection")
            taken += count
        return status, headers.get("connection", "").lower() != "close", bytes(data)


def _send_all(connection: socket.socket, parts: list[bytes]) -> None:
    views = [memoryview(part) for part in parts]
    while views:
        sent = connection.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]
