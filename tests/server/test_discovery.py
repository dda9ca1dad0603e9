"""Discovery: a real mDNS announcement on loopback, and the Supervisor's API when it misbehaves."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from custom_components.coral_vision.engine.server.discovery import (
    SERVICE_TYPE,
    SUPERVISOR_URL_ENV,
    Announcer,
    Identity,
    _unspecified,
)

IDENTITY = Identity("12345678-aaaa-bbbb-cccc-1234567890ab", "0.1.0", 32168, None)


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_mdns_announcement_on_loopback(session: aiohttp.ClientSession) -> None:
    announcer = Announcer({})
    await announcer.start(IDENTITY, "127.0.0.1", session, zeroconf=True)
    browser = AsyncZeroconf(interfaces=["127.0.0.1"])
    try:
        info = AsyncServiceInfo(SERVICE_TYPE, f"Coral Vision 12345678.{SERVICE_TYPE}")
        assert await info.async_request(browser.zeroconf, 3000)
        assert info.port == 32168
        assert info.properties == {
            b"id": IDENTITY.server_id.encode(),
            b"version": b"0.1.0",
            b"api": b"1",
        }
        assert info.parsed_addresses() == ["127.0.0.1"]
    finally:
        await browser.async_close()
        await announcer.stop(session)


async def test_without_zeroconf_installed(
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "zeroconf", None)
    announcer = Announcer({})
    await announcer.start(IDENTITY, "127.0.0.1", session, zeroconf=True)
    await announcer.stop(session)
    assert "python-zeroconf is not installed" in caplog.text


async def test_a_failing_supervisor_is_logged_not_fatal(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    answers: dict[str, tuple[int, object]] = {}

    async def handle(request: web.Request) -> web.Response:
        status, body = answers[request.path]
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    env = {
        "SUPERVISOR_TOKEN": "t",
        SUPERVISOR_URL_ENV: f"http://127.0.0.1:{runner.addresses[0][1]}",
    }
    try:
        # No host name from the Supervisor: the container's; a discovery answer without uuid.
        answers["/addons/self/info"] = (403, {"result": "error"})
        answers["/discovery"] = (200, {"result": "ok", "data": {}})
        announcer = Announcer(env)
        await announcer.start(IDENTITY, "0.0.0.0", session, zeroconf=False)
        assert "Could not register with Supervisor discovery" in caplog.text
        await announcer.stop(session)  # nothing to withdraw
        # Registered, but the withdrawal fails.
        answers["/discovery"] = (200, {"result": "ok", "data": {"uuid": "u1"}})
        answers["/discovery/u1"] = (500, {"result": "error"})
        announcer = Announcer(env)
        await announcer.start(IDENTITY, "0.0.0.0", session, zeroconf=False)
        await announcer.stop(session)
        assert "Could not withdraw the Supervisor discovery" in caplog.text
    finally:
        await runner.cleanup()
    # No Supervisor at all.
    caplog.clear()
    announcer = Announcer({"SUPERVISOR_TOKEN": "t", SUPERVISOR_URL_ENV: "http://127.0.0.1:9"})
    await announcer.start(IDENTITY, "0.0.0.0", session, zeroconf=False)
    assert "Could not register" in caplog.text


def test_unspecified_addresses() -> None:
    assert _unspecified("0.0.0.0")
    assert _unspecified("::")
    assert _unspecified("")
    assert not _unspecified("127.0.0.1")
    assert not _unspecified("my-host")


async def test_registers_under_the_host_name_the_supervisor_gives(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    posted: list[object] = []

    async def info(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer t"
        return web.json_response({"result": "ok", "data": {"hostname": "a0d7b954-coral-vision"}})

    async def discovery(request: web.Request) -> web.Response:
        posted.append(await request.json())
        return web.json_response({"result": "ok", "data": {"uuid": "u1"}})

    async def withdraw(request: web.Request) -> web.Response:
        return web.json_response({"result": "ok"})

    app = web.Application()
    app.router.add_get("/addons/self/info", info)
    app.router.add_post("/discovery", discovery)
    app.router.add_delete("/discovery/u1", withdraw)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    env = {
        "SUPERVISOR_TOKEN": "t",
        SUPERVISOR_URL_ENV: f"http://127.0.0.1:{runner.addresses[0][1]}",
    }
    try:
        announcer = Announcer(env)
        await announcer.start(IDENTITY, "0.0.0.0", session, zeroconf=False)
        await announcer.stop(session)
    finally:
        await runner.cleanup()
    assert posted == [
        {
            "service": "coral_vision",
            "config": {
                "host": "a0d7b954-coral-vision",
                "port": 32168,
                "id": IDENTITY.server_id,
                "api_key": None,
            },
        }
    ]
    assert "Registered with Supervisor discovery as a0d7b954-coral-vision:32168" in caplog.text


async def test_an_address_that_is_not_ours_is_not_announced(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    announcer = Announcer({})
    await announcer.start(IDENTITY, "192.0.2.1", session, zeroconf=True)  # TEST-NET-1
    await announcer.stop(session)
    assert "Could not announce the server over mDNS" in caplog.text
