"""Onboard a fresh development Home Assistant and add Coral Vision with the demo camera.

Run by scripts/develop inside the newest environment; talks to http://127.0.0.1:8123 only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp

URL = "http://127.0.0.1:8123"
CLIENT_ID = f"{URL}/"
USER, PASSWORD = "dev", "coral-vision-dev"
DEMO_CAMERA = "camera.demo_camera"


async def wait_for_api(session: aiohttp.ClientSession, seconds: float) -> None:
    """Wait until the onboarding API answers (the first start installs the frontend)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            async with session.get(f"{URL}/api/onboarding") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise SystemExit(f"Home Assistant did not answer on {URL} within {seconds:.0f} s")
        await asyncio.sleep(2)


async def token(session: aiohttp.ClientSession) -> str:
    """Create the owner on first start, or log in; return an access token."""
    async with session.get(f"{URL}/api/onboarding") as resp:
        steps = {s["step"]: s["done"] for s in await resp.json()}
    code = None
    if not steps.get("user"):
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
            code = (await resp.json())["result"]
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
        if not steps.get(step):
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


async def configure(session: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    """Add Coral Vision (CPU, default detection model) and the demo camera, once."""
    async with session.get(
        f"{URL}/api/config/config_entries/entry?domain=coral_vision", headers=headers
    ) as resp:
        entries = await resp.json()
    if not entries:
        await run_flow(
            session,
            headers,
            "/api/config/config_entries/flow",
            "coral_vision",
            {"user": {"device": "cpu"}, "model": {"model": "tf_coco_ssd_mobilenet_v1"}},
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


async def verify(session: aiohttp.ClientSession, headers: dict[str, str], config: Path) -> int:
    """Check the API, the entry, a detection on the demo camera, the logbook and the log."""
    async with session.get(f"{URL}/api/", headers=headers) as resp:
        api_ok = resp.status == 200
    url = f"{URL}/api/config/config_entries/entry?domain=coral_vision"
    async with session.get(url, headers=headers) as resp:
        states = [e["state"] for e in await resp.json()]
    # The demo camera shows each photo for 8 s and is scanned every 4 s: within a minute and a
    # half it has shown a person, and the logbook has its "detected" line.
    detections: list[str] = []
    for _ in range(45):
        async with session.get(f"{URL}/api/logbook", headers=headers) as resp:
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
        if "custom_components.coral_vision" in line and (" ERROR " in line or " CRITICAL " in line)
    ]
    print(
        f"api: {'ok' if api_ok else 'FAILED'}; coral_vision entries: {states}; "
        f"image_processing.demo_camera: {camera_state}; logbook: {detections[:3]}; "
        f"errors from custom_components.coral_vision: {len(errors)}"
    )
    for line in errors:
        print("  " + line)
    loaded = bool(states) and all(s == "loaded" for s in states)
    return 0 if api_ok and loaded and camera_state is not None and detections and not errors else 1


async def main() -> int:
    """Onboard, configure and optionally verify."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--wait", type=float, default=600)
    args = parser.parse_args()
    async with aiohttp.ClientSession() as session:
        await wait_for_api(session, args.wait)
        headers = {"Authorization": f"Bearer {await token(session)}"}
        if args.verify:
            return await verify(session, headers, args.config)
        await configure(session, headers)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
