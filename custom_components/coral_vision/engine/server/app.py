"""The web application: one factory, a route table, and middlewares for what every route shares.

Handlers (native.py, deepstack.py) parse, call the engine through the ModelHost and serialise;
the middlewares turn failures into each face's JSON, check the key, keep clients fair, and
refuse new work once shutdown has begun. Starting the app loads the models; cleaning it up
closes every dispatcher, so tests run it in-process exactly as the command does. (A cleanup
context rather than on_startup/on_cleanup: aiohttp 3.11's signal types reject any callback.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from ..errors import CoralVisionError
from ..inference.devices import list_edge_tpus
from ..runtime import Runtime
from . import deepstack, native
from .errors import HttpError, http_error, native_body
from .guard import (
    AUTHORIZED,
    Handler,
    Limiter,
    bearer,
    client_of,
    key_matches,
    route_kind,
    unauthorized,
)
from .host import ListTpus, ModelHost
from .identity import management_key, read_version, server_id
from .metrics import Recorder
from .options import ServerOptions
from .state import STATE, ServerState

_LOGGER = logging.getLogger(__name__)

# How long shutdown waits for requests in flight before failing the rest.
DRAIN_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class AppSettings:
    """What the command line does not set: the bounds, and stand-ins for tests."""

    limiter: Limiter = field(default_factory=Limiter)
    runtime: Runtime | None = None
    list_tpus: ListTpus = list_edge_tpus
    drain_seconds: float = DRAIN_SECONDS


def build_app(options: ServerOptions, settings: AppSettings | None = None) -> web.Application:
    """The server's application; starting it loads the models, cleaning it up closes them."""
    settings = settings or AppSettings()
    recorder = Recorder()
    host = ModelHost(
        options,
        runtime=settings.runtime,
        list_tpus=settings.list_tpus,
        on_result=recorder.record,
    )
    state = ServerState(
        options=options,
        host=host,
        recorder=recorder,
        limiter=settings.limiter,
        version=read_version(),
        drain_seconds=settings.drain_seconds,
    )
    # Bodies are read by the handlers within their own limits, never by aiohttp's post().
    app = web.Application(middlewares=[_failures, _gate])
    app[STATE] = state
    _routes(app.router, native.ROUTES + deepstack.ROUTES)
    app.cleanup_ctx.append(_lifetime)
    return app


def _routes(router: web.UrlDispatcher, table: Sequence[native.Route]) -> None:
    for method, path, handler, name in table:
        router.add_route(method, path, handler, name=name)


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    """Load the models on startup; close them (threads joined) and the session on cleanup."""
    state = app[STATE]
    state.server_id = await asyncio.to_thread(server_id, state.options.data_dir)
    key = state.options.api_key
    if key is None:  # detection may be open; managing models never is
        key = await asyncio.to_thread(management_key, state.options.data_dir)
    state.manage_key = key
    state.session = aiohttp.ClientSession()
    try:
        await state.host.start(state.session)
        yield
    finally:
        await state.host.close()
        await state.session.close()


async def drain(app: web.Application) -> None:
    """Refuse new requests, let those in flight finish for a while, then fail the rest."""
    state = app[STATE]
    state.draining = True
    if not await state.limiter.wait_idle(state.drain_seconds):
        _LOGGER.warning(
            "%d request(s) still running after %.0f s: failing them",
            state.limiter.in_flight,
            state.drain_seconds,
        )
    await state.host.close()


@web.middleware
async def _failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure with the JSON of the route's face and the matching status."""
    try:
        return await handler(request)
    except HttpError as err:
        failure = err
    except CoralVisionError as err:
        failure = http_error(err)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        failure = HttpError(err.status, "http_error", err.reason, {})
    except Exception:
        _LOGGER.exception("Request %s %s failed", request.method, request.path)
        failure = HttpError(500, "internal_error", "the server failed; see its log")
    if route_kind(request) == "deepstack" or request.path.startswith("/v1/vision/"):
        body = deepstack.failure_body(failure)
    else:
        body = native_body(failure)
    return web.json_response(body, status=failure.status, headers=failure.headers)


@web.middleware
async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse during shutdown, check the key, and hold a fair place for engine calls."""
    state = request.app[STATE]
    kind = route_kind(request)
    if state.draining:
        raise HttpError(503, "stopping", "the server is shutting down", {"Connection": "close"})
    if kind == "open":
        return await handler(request)
    if kind == "manage":  # never open, even when detection is
        request[AUTHORIZED] = key_matches(state.manage_key, bearer(request))
    else:
        request[AUTHORIZED] = key_matches(state.options.api_key, bearer(request))
    if not request[AUTHORIZED] and kind != "deepstack":
        raise unauthorized()
    if kind not in ("infer", "deepstack"):
        return await handler(request)
    with state.limiter.place(client_of(request)):
        return await handler(request)
