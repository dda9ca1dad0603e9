"""What every request passes first: shutdown, the API key, fairness between clients, body size.

Routes are named "<kind>:<name>"; the kind says what applies:
- "open": no key (/health);
- "infer": the key, and a place among the client's and the server's requests in flight;
- "deepstack": as "infer", but the key may also come as the form field api_key, which the
  handler checks once it has read the form;
- "manage" and "read": the key.
A client is its peer address: it may have `per_client` requests in flight (429 beyond), and the
server `total` (503 beyond), so one client cannot fill the queue in front of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from aiohttp.streams import StreamReader

from .errors import HttpError

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PER_CLIENT_IN_FLIGHT = 16
TOTAL_IN_FLIGHT = 64
AUTHORIZED = "coral_vision_authorized"
_CHUNK = 256 * 1024


class Limiter:
    """Counts requests in flight per client and in total; refuses beyond the bounds at once."""

    def __init__(self, per_client: int = PER_CLIENT_IN_FLIGHT, total: int = TOTAL_IN_FLIGHT):
        """Allow `per_client` requests per client and `total` in all."""
        self.per_client = per_client
        self.total = total
        self._clients: Counter[str] = Counter()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        """Requests holding a place now."""
        return self._in_flight

    @contextlib.contextmanager
    def place(self, client: str) -> Iterator[None]:
        """Hold a place for one request of `client`; HttpError 429 or 503 when there is none."""
        if self._in_flight >= self.total:
            raise HttpError(
                503, "busy", "the server is at its limit of requests", {"Retry-After": "1"}
            )
        if self._clients[client] >= self.per_client:
            raise HttpError(
                429,
                "too_many_requests",
                f"at most {self.per_client} requests in flight per client",
                {"Retry-After": "1"},
            )
        self._clients[client] += 1
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._clients[client] -= 1
            if not self._clients[client]:
                del self._clients[client]
            if not self._in_flight:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bound, not a deadline
        """Wait until no request holds a place, at most `timeout` seconds; whether it came."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


def key_matches(expected: str | None, offered: str | None) -> bool:
    """Whether a request's key is the server's, compared in constant time (no key: always)."""
    if expected is None:
        return True
    if offered is None:
        return False
    return hmac.compare_digest(expected.encode(), offered.encode())


def bearer(request: web.Request) -> str | None:
    """The key of an `Authorization: Bearer` header."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def client_of(request: web.Request) -> str:
    """Who sent a request, for fairness: the peer's address."""
    return request.remote or "unknown"


def connection_of(request: web.Request) -> str:
    """The request's connection ("host:port"): a client's default source id."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return client_of(request)


def route_kind(request: web.Request) -> str:
    """The kind in the matched route's name ("open" when nothing matched: 404 or 405)."""
    name = request.match_info.route.name if request.match_info.route else None
    return (name or "open").partition(":")[0]


async def read_body(stream: StreamReader, limit: int, what: str) -> bytes:
    """A body of at most `limit` bytes; HttpError 413 as soon as it is longer."""
    data = bytearray()
    while chunk := await stream.read(_CHUNK):
        if len(data) + len(chunk) > limit:
            raise too_large(what, limit)
        data += chunk
    return bytes(data)


def check_length(request: web.Request, limit: int, what: str) -> None:
    """Refuse a body whose declared length is over `limit` before reading it."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(what, limit)


def too_large(what: str, limit: int) -> HttpError:
    """The failure for a body over its limit."""
    return HttpError(413, "too_large", f"the {what} is larger than {limit} bytes")


def unauthorized() -> HttpError:
    """The failure for a missing or wrong key."""
    return HttpError(
        401,
        "unauthorized",
        "a valid API key is required (Authorization: Bearer KEY)",
        {"WWW-Authenticate": 'Bearer realm="coral-vision"'},
    )
