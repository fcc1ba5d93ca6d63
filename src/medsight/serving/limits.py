"""ASGI guards: request bodies above a size limit get 413 before they are parsed; requests without the
server's bearer token get 401 before anything else is done."""

from __future__ import annotations

import hmac
import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    """413 when Content-Length says the body is too large, or when a chunked body grows past the limit."""

    def __init__(self, app: Callable, limit_bytes: int, shown_limit_mb: int | None = None):
        self.app = app
        self.limit = limit_bytes
        self.shown_mb = shown_limit_mb if shown_limit_mb is not None else limit_bytes >> 20

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self.refuse(send)
            return
        state = {"received": 0, "over": False, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.limit:
                    state["over"] = True
                    return {"type": "http.disconnect"}  # the app stops reading; its reply is replaced below
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                if not state["started"]:
                    state["started"] = True
                    await self.refuse(send)
                return
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["over"]:  # a body cut short here is answered with 413, anything else is the app's
                raise
        if state["over"] and not state["started"]:
            await self.refuse(send)

    async def refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"the upload is larger than the limit of {self.shown_mb} MiB"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


DRAIN_BYTES = 1 << 20


class BearerToken:
    """401 unless the request carries ``Authorization: Bearer <token>`` (compared in constant time)."""

    def __init__(self, app: Callable, token: str, open_paths: tuple[str, ...] = ()):
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        # read (and drop) a small body so that the client, still sending, hears the answer; a large one is cut off
        drained, complete = 0, False
        while drained <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                break
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                complete = True
                break
        body = json.dumps({"detail": "a bearer token is required (Authorization: Bearer <token>)"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"www-authenticate", b"Bearer")]
        await send({"type": "http.response.start", "status": 401,
                    "headers": headers if complete else headers + [(b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
