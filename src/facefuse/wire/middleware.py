"""Per-request plumbing as plain ASGI: request id, body limit, access log, metrics.

A body still arriving after the request deadline is cut off with 10302 (a client
trickling bytes cannot hold a connection and a coroutine for ever).

It is also the last line of defence: a client that hangs up mid-body is logged as
such (status 499 in logs and metrics, no stack trace), and any unexpected exception
is logged once with the request id and answered 20001 PROCESS_ERROR in the error body
(HTTP 400, as the original API answers every failure) with the X-Request-Id header.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facefuse.errors import Err, FacefuseError
from facefuse.wire.metrics import LATENCY, REQUESTS
from facefuse.wire.responses import error_response

log = logging.getLogger("facefuse.access")
errors_log = logging.getLogger("facefuse.wire")
CLIENT_CLOSED = 499  # nginx's status for "the client hung up before the answer"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, body_deadline: float = 30.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_deadline = body_deadline  # a body trickling in slower than this is cut off

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        outcome = {"status": 500, "code": "", "sent": False, "cut_off": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                outcome["sent"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                if outcome["cut_off"]:  # the rest of the body is not worth waiting for: hang up
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._guarded(scope, receive, send_with_id, request_id, outcome)
        finally:
            self._record(scope, request_id, outcome, time.perf_counter() - started)

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, outcome: dict[str, object]
    ) -> None:
        """The app behind the body limits; a hang-up or an unexpected exception never escapes."""
        try:
            if _declared_length(scope) > self.max_body_bytes:
                await self._refuse_too_large(scope, receive, send)
            else:
                await self.app(scope, self._limited(receive, outcome), send)
        except ClientDisconnect:
            outcome["status"] = CLIENT_CLOSED
        except Exception:
            errors_log.exception("unexpected failure", extra={"request_id": request_id})
            if not outcome["sent"]:
                detail = f"processing failed; quote request id {request_id} when reporting this"
                await error_response(FacefuseError(Err.PROCESS_ERROR, detail))(scope, receive, send)

    def _limited(self, receive: Receive, outcome: dict[str, object]) -> Receive:
        """receive() that refuses a body over the size limit or still arriving past the deadline."""
        received, complete = 0, False
        cut_off = asyncio.get_running_loop().time() + self.body_deadline

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # later calls only wait for a disconnect: no deadline on those
                return await receive()
            try:
                async with asyncio.timeout_at(cut_off):
                    message = await receive()
            except TimeoutError:
                outcome["cut_off"] = True
                raise FacefuseError(
                    Err.PROCESS_TIMEOUT, f"the request body did not arrive within {self.body_deadline:g} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_body_bytes:
                    outcome["cut_off"] = True
                    raise FacefuseError(Err.REQUEST_TOO_LARGE, self._too_large_detail())
            return message

        return limited_receive

    async def _refuse_too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(FacefuseError(Err.REQUEST_TOO_LARGE, self._too_large_detail()))
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    def _too_large_detail(self) -> str:
        return f"the request body is over {self.max_body_bytes} bytes"

    @staticmethod
    def _record(scope: Scope, request_id: str, outcome: dict[str, object], seconds: float) -> None:
        route = scope.get("route")
        route_path = getattr(route, "path", "unmatched")
        status = str(outcome["status"])
        REQUESTS.labels(route_path, scope["method"], status, "").inc()
        LATENCY.labels(route_path).observe(seconds)
        # Never the query string: it carries api_secret.
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": int(status),
                "ms": round(seconds * 1000, 1),
                "api_key": scope.get("state", {}).get("api_key", ""),
            },
        )


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.match(text) else None
    return None


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
