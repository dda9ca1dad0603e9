"""What the handlers share: the settings, the models, the counters; one per application."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from .guard import Limiter
from .host import ModelHost
from .metrics import Recorder
from .options import ServerOptions


@dataclass(eq=False, kw_only=True)
class ServerState:
    """The server's state, stored in the application under STATE."""

    options: ServerOptions
    host: ModelHost
    recorder: Recorder
    limiter: Limiter
    version: str
    drain_seconds: float
    server_id: str = ""
    manage_key: str = ""  # the API key, or the management key when none is set
    session: aiohttp.ClientSession | None = None
    draining: bool = False


STATE = web.AppKey("coral_vision_state", ServerState)
