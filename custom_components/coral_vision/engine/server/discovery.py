"""Being found: an mDNS announcement, and inside the Home Assistant app, Supervisor discovery.

mDNS: `_coral-vision._tcp.local.` with TXT `id` (the server id), `version` and `api`, through
python-zeroconf (imported only here, and only when announcing). Supervisor: when
$SUPERVISOR_TOKEN is set (the app was given `hassio_api`), POST /discovery with service
`coral_vision` and the app's host name (from /addons/self/info), port, server id and key, so
Home Assistant offers the integration by itself; DELETE /discovery/<uuid> on the way out.
Neither failure stops the server: it is logged, and the server is still reachable by address.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from .identity import API_VERSION

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_coral-vision._tcp.local."
DISCOVERY_SERVICE = "coral_vision"
SUPERVISOR_TOKEN_ENV = "SUPERVISOR_TOKEN"
# Where the Supervisor answers; a test points it at a fake one on loopback.
SUPERVISOR_URL_ENV = "CORAL_VISION_SUPERVISOR_URL"
SUPERVISOR_URL = "http://supervisor"
_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True, slots=True)
class Identity:
    """What discovery tells about the server."""

    server_id: str
    version: str
    port: int
    api_key: str | None


class Announcer:
    """Announces the server once it listens; withdraws every announcement on stop()."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """Read the Supervisor's token and address from `environ` (default: os.environ)."""
        self._environ = os.environ if environ is None else environ
        self._zeroconf: Any = None
        self._service: Any = None
        self._discovery: tuple[str, str] | None = None  # (base URL, uuid)

    async def start(
        self,
        identity: Identity,
        bind: str,
        session: aiohttp.ClientSession,
        *,
        zeroconf: bool,
    ) -> None:
        """Announce over mDNS (unless `zeroconf` is False) and to the Supervisor when inside it."""
        if zeroconf:
            await self._announce_mdns(identity, bind)
        token = self._environ.get(SUPERVISOR_TOKEN_ENV)
        if token:
            await self._register(identity, token, session)

    async def stop(self, session: aiohttp.ClientSession | None) -> None:
        """Withdraw the announcements."""
        if self._discovery is not None and session is not None:
            base, uuid = self._discovery
            self._discovery = None
            try:
                async with session.delete(
                    f"{base}/discovery/{uuid}", headers=self._headers(), timeout=_TIMEOUT
                ) as response:
                    response.raise_for_status()
            except (aiohttp.ClientError, TimeoutError) as err:
                _LOGGER.warning("Could not withdraw the Supervisor discovery: %s", err)
        if self._zeroconf is not None:
            zeroconf, self._zeroconf = self._zeroconf, None
            try:
                # The first await queues the goodbye; the second waits until it is sent.
                await (await zeroconf.async_unregister_service(self._service))
            finally:
                await zeroconf.async_close()

    async def _announce_mdns(self, identity: Identity, bind: str) -> None:
        try:
            # get_all_addresses is public at run time, not in zeroconf's __all__.
            from zeroconf import (  # type: ignore[attr-defined]  # noqa: PLC0415
                InterfaceChoice,
                get_all_addresses,
            )
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf  # noqa: PLC0415
        except ImportError:
            _LOGGER.warning("python-zeroconf is not installed: the server is not announced")
            return
        short = identity.server_id[:8]
        everywhere = _unspecified(bind)
        addresses = get_all_addresses() if everywhere else [bind]
        self._service = AsyncServiceInfo(
            SERVICE_TYPE,
            f"Coral Vision {short}.{SERVICE_TYPE}",
            port=identity.port,
            properties={"id": identity.server_id, "version": identity.version, "api": API_VERSION},
            parsed_addresses=addresses,
            server=f"coral-vision-{short}.local.",
        )
        try:
            self._zeroconf = AsyncZeroconf(interfaces=InterfaceChoice.All if everywhere else [bind])
            await (await self._zeroconf.async_register_service(self._service))
        except (OSError, ValueError) as err:
            _LOGGER.warning("Could not announce the server over mDNS: %s", err)
            if self._zeroconf is not None:
                await self._zeroconf.async_close()
            self._zeroconf = None
            return
        _LOGGER.info("Announced %s over mDNS", self._service.name)

    async def _register(
        self, identity: Identity, token: str, session: aiohttp.ClientSession
    ) -> None:
        base = self._environ.get(SUPERVISOR_URL_ENV, SUPERVISOR_URL).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"}
        try:
            hostname = await _own_hostname(session, base, headers)
            config = {
                "host": hostname,
                "port": identity.port,
                "id": identity.server_id,
                "api_key": identity.api_key,
            }
            async with session.post(
                f"{base}/discovery",
                json={"service": DISCOVERY_SERVICE, "config": config},
                headers=headers,
                timeout=_TIMEOUT,
            ) as response:
                response.raise_for_status()
                document = await response.json()
            uuid = document["data"]["uuid"]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as err:
            _LOGGER.warning("Could not register with Supervisor discovery: %s", err)
            return
        self._discovery = (base, str(uuid))
        _LOGGER.info("Registered with Supervisor discovery as %s:%d", hostname, identity.port)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._environ.get(SUPERVISOR_TOKEN_ENV, '')}"}


async def _own_hostname(
    session: aiohttp.ClientSession, base: str, headers: Mapping[str, str]
) -> str:
    """The app's host name on Home Assistant's network, as the Supervisor knows it."""
    try:
        async with session.get(
            f"{base}/addons/self/info", headers=headers, timeout=_TIMEOUT
        ) as response:
            response.raise_for_status()
            hostname = (await response.json())["data"]["hostname"]
            if isinstance(hostname, str) and hostname:
                return hostname
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as err:
        _LOGGER.debug("No host name from the Supervisor (%s); using the container's", err)
    # The Supervisor names the app's container after its host name.
    return socket.gethostname()


def _unspecified(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_unspecified
    except ValueError:
        return bind in ("", "*")
