"""Real HTTP servers for the tests: uvicorn on a free loopback port in a thread, and a scripted test endpoint."""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import uvicorn

    # proto=IPPROTO_TCP as uvicorn's own sockets have it: asyncio then sets TCP_NODELAY on each connection;
    # without, a reply's headers and body wait on each other (Nagle + delayed ACK: 40 ms per keep-alive request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Script:
    """A POST endpoint (any path) whose answer to the n-th request is `reply(n, body)` -> (status, JSON or text).

    `reply` may be async. Counts the requests (`calls`), keeps their bodies and headers, and the most requests
    in flight at once (`max_in_flight`).
    """

    def __init__(self, reply: Callable[[int, Any], Any]) -> None:
        self.reply, self.calls, self.bodies, self.headers = reply, 0, [], []
        self.in_flight = self.max_in_flight = 0

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, PlainTextResponse
        from starlette.routing import Route

        async def endpoint(request: Any) -> Any:
            body = await request.json()
            self.calls += 1
            self.bodies.append(body)
            self.headers.append(dict(request.headers))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                out = self.reply(self.calls, body)
                status, payload = await out if inspect.isawaitable(out) else out
            finally:
                self.in_flight -= 1
            if isinstance(payload, str):
                return PlainTextResponse(payload, status_code=status)
            return JSONResponse(payload, status_code=status)

        return Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])


async def slowly(seconds: float, answer: Any) -> Any:
    """`answer` after `seconds` (for replies that keep a request in flight)."""
    await asyncio.sleep(seconds)
    return answer
