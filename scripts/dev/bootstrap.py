"""Prepare, onboard and configure the development Home Assistant: Coral Vision, demo camera.

Run by scripts/develop inside the newest environment; talks to http://127.0.0.1:8123 only (and,
with `--server`, through Home Assistant's config flow to a Coral Vision server on loopback).
`--prepare` runs before Home Assistant starts; the other modes talk to the running instance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

HOST, PORT = "127.0.0.1", 8123
URL = f"http://{HOST}:{PORT}"
CLIENT_ID = f"{URL}/"
USER, PASSWORD = "dev", "coral-vision-dev"
DEMO_CAMERA = "camera.demo_camera"
DEFAULT_MODEL = "tf_coco_ssd_mobilenet_v1"
# The server's device, as Coral Vision's server integration names it (server.py).
SERVER_DEVICE_MODEL = "Coral Vision server"
# Every request is bounded: a socket that is bound but not yet served would otherwise hang.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
# Made by Home Assistant's own default configuration; here only when missing, so that
# automations, scripts and scenes created in the UI persist.
UI_FILES = {"automations.yaml": "[]\n", "scripts.yaml": "", "scenes.yaml": ""}


def prepare(config: Path) -> None:
    """Create the files the UI edits and pin the HTTP server to 127.0.0.1 (HA is not running)."""
    for name, content in UI_FILES.items():
        if not (config / name).exists():
            (config / name).write_text(content)
    write_http_store(config)
    skip_onboarding_extras(config)


def write_store(path: Path, document: dict[str, Any]) -> None:
    """Write a Home Assistant storage file, private like Home Assistant's own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(document, file, indent=2)


def skip_onboarding_extras(config: Path) -> None:
    """On a new config, mark the location and analytics onboarding steps done beforehand.

    Finishing the location step sets up Radio Browser, Met.no, Google Translate and a shopping
    list, which reach the internet (and fail to load here): the development instance keeps to
    Coral Vision. Onboarding is still finished through the API (owner, then integration step).
    """
    from homeassistant.components import onboarding  # noqa: PLC0415

    storage = config / ".storage"
    if (storage / onboarding.STORAGE_KEY).exists() or (storage / "auth").exists():
        return
    steps = [onboarding.const.STEP_CORE_CONFIG, onboarding.const.STEP_ANALYTICS]
    write_store(
        storage / onboarding.STORAGE_KEY,
        {
            "version": onboarding.STORAGE_VERSION,
            "minor_version": 1,
            "key": onboarding.STORAGE_KEY,
            "data": {"done": steps},
        },
    )


def write_http_store(config: Path) -> None:
    """Store 127.0.0.1:8123 as the confirmed ("stable") HTTP configuration, no pending change.

    Home Assistant 2026.10 keeps the HTTP settings in .storage/http: YAML is migrated once into a
    "pending" slot that must be confirmed in the UI within five minutes, or it is reverted with a
    restart (which ends a plain `hass`). A stable entry with the YAML migration marked done is what
    a confirmed change leaves behind, so the server binds 127.0.0.1 at once and nothing reverts.
    """
    # Imported here: only the newest Home Assistant has this store, and only --prepare needs it.
    from homeassistant.components.http import config as http_config  # noqa: PLC0415
    from homeassistant.util import dt as dt_util  # noqa: PLC0415

    path = config / ".storage" / http_config.STORAGE_KEY
    wanted = dict(http_config.HTTP_STORAGE_SCHEMA({"server_host": [HOST], "server_port": PORT}))
    try:
        stored = json.loads(path.read_text())
        data = stored["data"]
        current = {k: v for k, v in data[http_config.KEY_STABLE].items() if k in wanted}
        if (
            stored["version"] == http_config.STORAGE_VERSION
            and current == wanted
            and data[http_config.KEY_PENDING] is None
            and data[http_config.KEY_YAML_MIGRATION_DONE]
        ):
            return
        print(f"bootstrap: resetting the HTTP settings in {path} to {HOST}:{PORT}")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    stable = {
        **wanted,
        http_config.HTTP_CONFIG_CREATED_AT: dt_util.utcnow().isoformat(),
        http_config.HTTP_CONFIG_ERROR: None,
        http_config.HTTP_CONFIG_ERROR_MESSAGE: None,
    }
    document = {
        "version": http_config.STORAGE_VERSION,
        "minor_version": http_config.STORAGE_MINOR_VERSION,
        "key": http_config.STORAGE_KEY,
        "data": {
            http_config.KEY_STABLE: stable,
            http_config.KEY_PENDING: None,
            http_config.KEY_YAML_MIGRATION_DONE: True,
        },
    }
    write_store(path, document)


async def wait_for_api(session: aiohttp.ClientSession, seconds: float) -> dict[str, bool] | None:
    """Wait until the server answers; return the onboarding steps, or None when onboarded.

    The server starts serving once the frontend is set up, and the onboarding API is there until
    onboarding is done (404 afterwards), so either answer means it is up.
    """
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            async with session.get(f"{URL}/api/onboarding") as resp:
                if resp.status == 200:
                    return {s["step"]: s["done"] for s in await resp.json()}
                if resp.status == 404:
                    return None
        except (aiohttp.ClientError, TimeoutError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise SystemExit(f"Home Assistant did not answer on {URL} within {seconds:.0f} s")
        await asyncio.sleep(2)


async def wait_until_running(
    session: aiohttp.ClientSession, headers: dict[str, str], seconds: float
) -> None:
    """Wait until Home Assistant has finished starting (every integration set up)."""
    deadline = asyncio.get_running_loop().time() + seconds
    state = None
    while asyncio.get_running_loop().time() < deadline:
        async with session.get(f"{URL}/api/core/state", headers=headers) as resp:
            state = (await resp.json()).get("state") if resp.status == 200 else None
        if state == "RUNNING":
            return
        await asyncio.sleep(1)
    raise SystemExit(f"Home Assistant did not finish starting within {seconds:.0f} s ({state})")


async def token(session: aiohttp.ClientSession, steps: dict[str, bool] | None) -> str:
    """Create the owner on first start, or log in; finish onboarding; return an access token."""
    pending = {step for step, done in (steps or {}).items() if not done}
    code = None
    if "user" in pending:
        body = {
            "client_id": CLIENT_ID,
            "name": "Developer",
            "username": USER,
            "password": PASSWORD,
            "language": "en",
        }
        async with session.post(f"{URL}/api/onboarding/users", json=body) as resp:
            # 403: the owner was created meanwhile (by an earlier run); log in instead.
            if resp.status != 403:
                resp.raise_for_status()
                code = (await resp.json())["auth_code"]
    if code is None:
        body = {
            "client_id": CLIENT_ID,
            "handler": ["homeassistant", None],
            "redirect_uri": CLIENT_ID,
        }
        async with session.post(f"{URL}/auth/login_flow", json=body) as resp:
            flow = await resp.json()
        body = {"client_id": CLIENT_ID, "username": USER, "password": PASSWORD}
        async with session.post(f"{URL}/auth/login_flow/{flow['flow_id']}", json=body) as resp:
            result = await resp.json()
        if "result" not in result:
            raise SystemExit(f"logging in as {USER} / {PASSWORD} failed: {result}")
        code = result["result"]
    data = {"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID}
    async with session.post(f"{URL}/auth/token", data=data) as resp:
        resp.raise_for_status()
        access: str = (await resp.json())["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    for step, body in (
        ("core_config", {}),
        ("analytics", {}),
        ("integration", {"client_id": CLIENT_ID, "redirect_uri": CLIENT_ID}),
    ):
        if step in pending:
            async with session.post(f"{URL}/api/onboarding/{step}", json=body, headers=headers):
                pass
    return access


async def run_flow(
    session: aiohttp.ClientSession,
    headers: dict[str, str],
    path: str,
    handler: Any,
    answers: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Walk a config or subentry flow, answering each form from `answers` by step id."""
    async with session.post(f"{URL}{path}", json={"handler": handler}, headers=headers) as resp:
        result: dict[str, Any] = await resp.json()
    for _ in range(120):
        kind = result.get("type")
        if kind in ("create_entry", "abort"):
            return result
        if kind == "progress":
            await asyncio.sleep(1)
            async with session.get(f"{URL}{path}/{result['flow_id']}", headers=headers) as resp:
                result = await resp.json()
            continue
        if kind == "progress_done":
            body: dict[str, Any] = {}
        elif kind == "form" and not result.get("errors"):
            body = answers.get(result["step_id"], {})
        else:
            raise SystemExit(f"flow stopped: {result}")
        async with session.post(
            f"{URL}{path}/{result['flow_id']}", json=body, headers=headers
        ) as resp:
            result = await resp.json()
    raise SystemExit(f"flow did not finish: {result}")


async def set_country(session: aiohttp.ClientSession, access: str) -> None:
    """Set a country, as onboarding's location step does (without one a repair is raised)."""
    headers = {"Authorization": f"Bearer {access}"}
    async with session.get(f"{URL}/api/config", headers=headers) as resp:
        if (await resp.json()).get("country"):
            return
    async with session.ws_connect(f"{URL}/api/websocket") as socket:
        await socket.receive_json()  # auth_required
        await socket.send_json({"type": "auth", "access_token": access})
        await socket.receive_json()  # auth_ok
        await socket.send_json({"id": 1, "type": "config/core/update", "country": "US"})
        result = await socket.receive_json()
    if not result.get("success"):
        raise SystemExit(f"setting the country failed: {result}")


@dataclass(frozen=True)
class Server:
    """The Coral Vision server Home Assistant is connected to (`--server`)."""

    host: str
    port: int
    key: str | None


async def configure(
    session: aiohttp.ClientSession, headers: dict[str, str], server: Server | None, model: str
) -> None:
    """Add Coral Vision (the CPU, or the server) with the model, and the demo camera, once."""
    async with session.get(
        f"{URL}/api/config/config_entries/entry?domain=coral_vision", headers=headers
    ) as resp:
        entries = await resp.json()
    if server is not None:
        # Every time: a new server is added; a known one at a new address moves its entry
        # (the flow ends "already_configured" then), as for a person adding it again.
        address = {"host": server.host, "port": server.port, "api_key": server.key or ""}
        result = await run_flow(
            session,
            headers,
            "/api/config/config_entries/flow",
            "coral_vision",
            {"user": {"device": "server"}, "server": address, "server_model": {"model": model}},
        )
        if result.get("type") == "abort" and result.get("reason") != "already_configured":
            raise SystemExit(f"adding the Coral Vision server failed: {result}")
    elif not entries:
        await run_flow(
            session,
            headers,
            "/api/config/config_entries/flow",
            "coral_vision",
            {"user": {"device": "cpu"}, "model": {"model": model}},
        )
    async with session.get(
        f"{URL}/api/config/config_entries/entry?domain=coral_vision", headers=headers
    ) as resp:
        entries = await resp.json()
    entry = entries[0]
    if not entry.get("num_subentries"):
        await run_flow(
            session,
            headers,
            "/api/config/config_entries/subentries/flow",
            [entry["entry_id"], "camera"],
            {
                "user": {
                    "camera_entity": DEMO_CAMERA,
                    "labels": ["person", "cat", "bird", "kite", "tie"],
                    "scan_interval": 4,
                },
                "scores": {},
                "filters": {"off_delay": 10, "save_snapshots": True},
            },
        )


async def server_devices(session: aiohttp.ClientSession, access: str) -> list[str]:
    """The names of the Coral Vision server devices in the device registry."""
    async with session.ws_connect(f"{URL}/api/websocket") as socket:
        await socket.receive_json()  # auth_required
        await socket.send_json({"type": "auth", "access_token": access})
        await socket.receive_json()  # auth_ok
        await socket.send_json({"id": 1, "type": "config/device_registry/list"})
        result = await socket.receive_json()
    devices = result.get("result", []) if result.get("success") else []
    return [
        str(d.get("name"))
        for d in devices
        if str(d.get("model") or "").startswith(SERVER_DEVICE_MODEL)
    ]


async def verify(
    session: aiohttp.ClientSession,
    headers: dict[str, str],
    config: Path,
    since: str,
    server: Server | None = None,
) -> int:
    """Check the API, the entry, a detection on the demo camera, the logbook and the log."""
    async with session.get(f"{URL}/api/", headers=headers) as resp:
        api_ok = resp.status == 200
    # What the frontend needs to start: it waits for these forever when they fail.
    async with session.get(f"{URL}/api/services", headers=headers) as resp:
        api_ok = api_ok and resp.status == 200
    url = f"{URL}/api/config/config_entries/entry?domain=coral_vision"
    async with session.get(url, headers=headers) as resp:
        states = [e["state"] for e in await resp.json()]
    # The demo camera shows each photo for 8 s and is scanned every 4 s: within a minute and a
    # half it has shown a person, and the logbook has its "detected" line.
    detections: list[str] = []
    for _ in range(45):
        # Only this start's lines: the logbook keeps those of earlier runs.
        url, params = f"{URL}/api/logbook", {}
        if since:
            url, params = f"{url}/{since}", {"end_time": "2100-01-01T00:00:00+00:00"}
        async with session.get(url, headers=headers, params=params) as resp:
            entries = await resp.json() if resp.status == 200 else []
        detections = [
            f"{e.get('name')} {e.get('message')}"
            for e in entries
            if e.get("domain") == "coral_vision" or "detected" in str(e.get("message", ""))
        ]
        if detections:
            break
        await asyncio.sleep(2)
    async with session.get(
        f"{URL}/api/states/image_processing.demo_camera", headers=headers
    ) as resp:
        camera_state = (await resp.json()).get("state") if resp.status == 200 else None
    log = (config / "home-assistant.log").read_text(errors="replace")
    errors = [
        line
        for line in log.splitlines()
        if (
            "custom_components.coral_vision" in line and (" ERROR " in line or " CRITICAL " in line)
        )
        or "integration 'coral_vision'" in line  # Home Assistant reporting a deprecated call
    ]
    access = headers["Authorization"].removeprefix("Bearer ")
    repairs = await list_repairs(session, access)
    print("repairs: " + (", ".join(repairs) if repairs else "none"))
    errors += [f"repair issue raised: {issue}" for issue in repairs if _ours(issue)]
    if server is not None:
        # The detections came through the server: its entry is the only one, with its device.
        devices = await server_devices(session, access)
        print(f"server: http://{server.host}:{server.port}; its device: {devices}")
        if len(states) != 1 or not devices:
            errors.append(f"expected one entry, a Coral Vision server's: {states}, {devices}")
    print(
        f"api: {'ok' if api_ok else 'FAILED'}; coral_vision entries: {states}; "
        f"image_processing.demo_camera: {camera_state}; logbook: {detections[:3]}; "
        f"errors from custom_components.coral_vision: {len(errors)}"
    )
    for line in errors:
        print("  " + line)
    loaded = bool(states) and all(s == "loaded" for s in states)
    return 0 if api_ok and loaded and camera_state is not None and detections and not errors else 1


async def list_repairs(session: aiohttp.ClientSession, access: str) -> list[str]:
    """The active repair issues, as "domain/issue_id (placeholders)", as Settings shows them."""
    async with session.ws_connect(f"{URL}/api/websocket") as socket:
        await socket.receive_json()  # auth_required
        await socket.send_json({"type": "auth", "access_token": access})
        await socket.receive_json()  # auth_ok
        await socket.send_json({"id": 1, "type": "repairs/list_issues"})
        result = await socket.receive_json()
    issues = result.get("result", {}).get("issues", []) if result.get("success") else []
    return [
        f"{i.get('domain')}/{i.get('issue_id')} {i.get('translation_placeholders') or ''}".strip()
        for i in issues
        if not i.get("dismissed_version") and not i.get("ignored")
    ]


def _ours(issue: str) -> bool:
    """Whether a repair issue is about Coral Vision.

    Home Assistant's own "deprecated_method" issue (the Core installation method is deprecated)
    is about this dev setup, not the integration.
    """
    return "coral_vision" in issue


async def main() -> int:
    """Prepare, or onboard and configure, or verify."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--wait", type=float, default=600)
    parser.add_argument("--since", default="", help="ISO time of the start being verified")
    parser.add_argument("--server", help="HOST:PORT of a Coral Vision server to connect to")
    parser.add_argument("--server-key", help="the server's API key")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the catalog model to run")
    args = parser.parse_args()
    server = None
    if args.server:
        host, _, port = args.server.rpartition(":")
        server = Server(host, int(port), args.server_key)
    if args.prepare:
        prepare(args.config)
        return 0
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        steps = await wait_for_api(session, args.wait)
        access = await token(session, steps)
        headers = {"Authorization": f"Bearer {access}"}
        await wait_until_running(session, headers, args.wait)
        if args.verify:
            return await verify(session, headers, args.config, args.since, server)
        await set_country(session, access)
        await configure(session, headers, server, args.model)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
