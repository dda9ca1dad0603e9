"""Run the server until SIGTERM or SIGINT, then shut it down gracefully.

Shutdown: new requests get 503 at once, the listening socket closes, requests in flight get
up to the drain bound to finish, then every dispatcher closes (what still waits fails with 503)
and its threads are joined.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from .app import AppSettings, build_app, drain
from .discovery import Announcer, Identity
from .identity import MANAGEMENT_KEY_FILE
from .options import ServerOptions
from .state import STATE

_LOGGER = logging.getLogger(__name__)

# How long handlers get to write their last answers once the dispatchers are closed.
_ANSWER_SECONDS = 5.0


async def serve(
    options: ServerOptions,
    settings: AppSettings | None = None,
    *,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[str, int], None] | None = None,
) -> None:
    """Load the models, listen, announce, and run until `stop` is set (or a signal comes)."""
    stop = stop or asyncio.Event()
    app = build_app(options, settings)
    debug = _LOGGER.isEnabledFor(logging.DEBUG)
    runner = web.AppRunner(
        app,
        shutdown_timeout=_ANSWER_SECONDS,
        access_log=logging.getLogger("aiohttp.access") if debug else None,
    )
    await runner.setup()  # on_startup: the models are loaded before the port opens
    announcer = Announcer()
    state = app[STATE]
    loop = asyncio.get_running_loop()
    # Before the port opens: a signal sent as soon as it is listening already stops it gently.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, options.host, options.port)
        await site.start()
        port = int(runner.addresses[0][1])
        shown = f"[{options.host}]" if ":" in options.host else options.host
        # One line on stderr whatever the log level: scripts and tests read the port from it.
        print(
            f"Coral Vision server listening on http://{shown}:{port}", file=sys.stderr, flush=True
        )
        if on_listening is not None:
            on_listening(options.host, port)
        if options.api_key is None:
            if not _loopback(options.host):
                _LOGGER.warning("No API key is set: anyone who can reach port %d can detect", port)
            _LOGGER.info(
                "Managing models needs the key in %s (or set an API key)",
                options.data_dir / MANAGEMENT_KEY_FILE,
            )
        # Supervisor discovery hands Home Assistant the key that also manages models.
        identity = Identity(state.server_id, state.version, port, state.manage_key)
        assert state.session is not None  # set on startup
        await announcer.start(identity, options.host, state.session, zeroconf=options.zeroconf)
        await stop.wait()
        _LOGGER.info("Shutting down")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        state.draining = True
        await announcer.stop(state.session)
        for open_site in list(runner.sites):
            await open_site.stop()  # no new connections
        await drain(app)
        await runner.cleanup()


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
