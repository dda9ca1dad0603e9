"""Check the development Home Assistant in headless Chromium as a person would see it.

Run by `scripts/develop --check` on this machine (not in the chroot), with Playwright driving
Debian's Chromium: log in, open the Coral Vision integration page, the demo camera's device page
and the annotated last-detection picture; save a PNG of each; fail on a page that stays loading,
an answer of 400 or more from Home Assistant, a failed websocket command, an error in the page or
its console, or an error the page shows (a translation error, an entry that failed to set up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Response,
    WebSocket,
    async_playwright,
    expect,
)
from playwright.async_api import Error as PlaywrightError

URL = "http://127.0.0.1:8123"
USER, PASSWORD = "dev", "coral-vision-dev"
DEMO_PROCESSOR = "image_processing.demo_camera"
# As root in a container with no network: no sandbox, no GPU, and nothing that calls home.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# How long a page may take to show its content (the first load compiles the frontend's scripts).
LOAD_SECONDS = 60
# Late answers (websocket results, images) still count against the page just opened.
SETTLE_MS = 2500
VIEWPORT = {"width": 1280, "height": 900}
# Texts the frontend shows for a broken config entry or a broken translation string.
SHOWN_ERRORS = re.compile(r"Translation error|Failed to set up|Retrying setup|Not loaded")
# Websocket answers that are errors by protocol but normal to the frontend.
EXPECTED_FAILURES = {
    # No dashboard saved yet: the frontend generates the default one.
    ("lovelace/config", "config_not_found"),
    # A card unsubscribing after its subscription already ended (the frontend ignores it).
    ("unsubscribe_events", "not_found"),
}


class Watcher:
    """Collects what a person would call an error while pages load."""

    def __init__(self) -> None:
        """Start with nothing seen."""
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.page = "login"
        self.since = time.monotonic()

    def attach(self, page: Page) -> None:
        """Follow the page's console, its errors, its requests and its websocket."""
        page.on("console", self._console)
        page.on("pageerror", lambda error: self._add(f"page error: {error}"))
        page.on("response", self._response)
        page.on("requestfailed", self._request_failed)
        page.on("websocket", self._websocket)

    def _add(self, problem: str) -> None:
        """Remember a problem, with the page it happened on."""
        self.problems.append(f"[{self.page}] {problem}")

    def _console(self, message: ConsoleMessage) -> None:
        """An error logged by the frontend (failed loads are reported by _response, with URL)."""
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self._add(f"console error: {message.text}")

    def _response(self, response: Response) -> None:
        """A request to Home Assistant that it refused or failed."""
        if not response.url.startswith(URL) or response.status < 400:
            return
        path = response.url.removeprefix(URL).split("?")[0]
        if path == "/favicon.ico":  # asked for by Chromium itself on a bare image
            return
        if path.startswith("/api/brands/integration/"):
            # The frontend hides a missing brand image; an integration ships its own in brand/.
            self.notes.append(f"no brand image: {path} ({response.status})")
            return
        self._add(f"HTTP {response.status} for {response.request.method} {path}")

    def _request_failed(self, request: Request) -> None:
        """A request that got no answer (aborted ones are the browser leaving a page)."""
        if request.url.startswith(URL) and "ERR_ABORTED" not in (request.failure or ""):
            self._add(f"request failed: {request.method} {request.url}: {request.failure}")

    def _websocket(self, socket: WebSocket) -> None:
        """Follow the commands of the websocket API and their answers."""
        commands: dict[int, str] = {}
        socket.on("framesent", lambda payload: self._sent(commands, payload))
        socket.on("framereceived", lambda payload: self._received(commands, payload))

    @staticmethod
    def _messages(payload: str | bytes) -> list[dict[str, Any]]:
        """The messages of one frame (Home Assistant may batch several in a list)."""
        try:
            data = json.loads(payload)
        except ValueError:
            return []
        return [m for m in (data if isinstance(data, list) else [data]) if isinstance(m, dict)]

    def _sent(self, commands: dict[int, str], payload: str | bytes) -> None:
        """Remember which command each id is."""
        for message in self._messages(payload):
            if "id" in message:
                commands[message["id"]] = str(message.get("type"))

    def _received(self, commands: dict[int, str], payload: str | bytes) -> None:
        """Record every command result that reports a failure, unless the frontend expects it."""
        for message in self._messages(payload):
            if message.get("type") != "result" or message.get("success") is not False:
                continue
            command = commands.get(message.get("id", -1), "?")
            error = message.get("error") or {}
            if (command, error.get("code")) not in EXPECTED_FAILURES:
                self._add(f"websocket command {command} failed: {error}")


async def log_in(page: Page) -> None:
    """Log in through the login form, as a person does."""
    await page.goto(f"{URL}/", wait_until="domcontentloaded")
    await page.locator("input[name=username]").fill(USER, timeout=LOAD_SECONDS * 1000)
    await page.locator("input[name=password]").fill(PASSWORD)
    await page.locator("input[name=password]").press("Enter")
    await wait_loaded(page, "the dashboard")


async def wait_loaded(page: Page, what: str, text: str | None = None) -> None:
    """Wait until the app shows its content instead of a loading screen, then settle."""
    try:
        await page.locator("home-assistant-main").wait_for(
            state="attached", timeout=LOAD_SECONDS * 1000
        )
        await page.wait_for_function(
            "() => !document.getElementById('ha-launch-screen')", timeout=LOAD_SECONDS * 1000
        )
        if text is not None:
            await page.get_by_text(text, exact=False).first.wait_for(
                state="visible", timeout=LOAD_SECONDS * 1000
            )
        await page.locator("hass-loading-screen").first.wait_for(
            state="detached", timeout=LOAD_SECONDS * 1000
        )
        await page.wait_for_timeout(SETTLE_MS)
        # Cards load their own data (the device page's activity) once shown: a person waits too.
        await expect(page.locator("ha-spinner:visible")).to_have_count(
            0, timeout=LOAD_SECONDS * 1000
        )
    except (PlaywrightError, AssertionError) as err:
        first_line = str(err).splitlines()[0]
        raise StuckError(f"{what} is still loading after {LOAD_SECONDS} s: {first_line}") from err


async def shown_errors(page: Page) -> list[str]:
    """Error texts the frontend shows in the page itself (a config entry or a translation)."""
    found = page.get_by_text(SHOWN_ERRORS)
    return [(await found.nth(i).inner_text()).strip() for i in range(await found.count())]


class StuckError(Exception):
    """A page that never finished loading."""


async def demo_camera(page: Page) -> dict[str, Any]:
    """The demo camera's device, its annotated image entity and that image's URL."""
    found: dict[str, Any] = await page.evaluate(
        """(processor) => {
            const hass = document.querySelector("home-assistant").hass;
            const entity = hass.entities[processor];
            if (!entity || !entity.device_id) return {};
            const images = Object.values(hass.entities).filter(
                (e) => e.device_id === entity.device_id && e.entity_id.startsWith("image."));
            const image = images.length ? images[0].entity_id : null;
            const state = image ? hass.states[image] : null;
            return {
                device_id: entity.device_id,
                device_name: hass.devices[entity.device_id].name_by_user
                    || hass.devices[entity.device_id].name,
                image: image,
                picture: state ? state.attributes.entity_picture : null,
            };
        }""",
        DEMO_PROCESSOR,
    )
    return found


async def shoot(page: Page, folder: Path, name: str, watcher: Watcher) -> Path:
    """Save a PNG of the whole page, after noting the errors it shows."""
    for text in await shown_errors(page):
        watcher.problems.append(f"[{watcher.page}] the page shows: {text[:200]}")
    path = folder / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    print(f"ui: {name} after {time.monotonic() - watcher.since:.1f} s", flush=True)
    watcher.since = time.monotonic()
    return path


async def check(browser: Browser, folder: Path, watcher: Watcher) -> list[Path]:
    """Open each page a person would look at, screenshot it; raise StuckError if one hangs."""
    context = await browser.new_context(viewport=VIEWPORT, locale="en-US")
    page = await context.new_page()
    watcher.attach(page)
    shots: list[Path] = []
    try:
        await log_in(page)
        shots.append(await shoot(page, folder, "1-dashboard", watcher))

        watcher.page = "integration"
        await page.goto(f"{URL}/config/integrations/integration/coral_vision")
        await wait_loaded(page, "the Coral Vision integration page", "Coral Vision")
        shots.append(await shoot(page, folder, "2-integration", watcher))

        camera = await demo_camera(page)
        if not camera.get("device_id"):
            raise StuckError(f"{DEMO_PROCESSOR} has no device in the frontend's registry")
        watcher.page = "device"
        await page.goto(f"{URL}/config/devices/device/{camera['device_id']}")
        await wait_loaded(page, "the demo camera's device page", camera["device_name"])
        shots.append(await shoot(page, folder, "3-device", watcher))

        watcher.page = "last detection"
        camera = await demo_camera(page)
        if not camera.get("picture"):
            raise StuckError(
                f"the demo camera's device has no image entity with a picture: {camera}"
            )
        response = await page.goto(f"{URL}{camera['picture']}")
        kind = response.headers.get("content-type", "") if response else ""
        if response is None or response.status != 200 or not kind.startswith("image/"):
            status = response.status if response else "no answer"
            watcher.problems.append(f"[last detection] {camera['image']}: {status} {kind}")
        await page.wait_for_timeout(500)
        shots.append(await shoot(page, folder, "4-last-detection", watcher))
    except (StuckError, PlaywrightError) as err:
        name = f"stuck-{watcher.page.replace(' ', '-')}"
        with contextlib.suppress(PlaywrightError):
            shots.append(await shoot(page, folder, name, watcher))
        raise StuckError(str(err)) from err
    finally:
        await context.close()
    return shots


async def main() -> int:
    """Run the check; print the screenshots and every problem seen."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--screenshots", type=Path, required=True)
    args = parser.parse_args()
    folder: Path = args.screenshots
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    watcher = Watcher()
    stuck = None
    async with async_playwright() as playwright:
        # Playwright gives each launch a new, empty profile (--user-data-dir) and removes it after.
        browser = await playwright.chromium.launch(
            executable_path=args.chromium, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            shots = await check(browser, folder, watcher)
        except StuckError as err:
            stuck = f"[{watcher.page}] {err}"
            shots = sorted(folder.glob("*.png"))
        finally:
            await browser.close()
    print(f"ui: screenshots in {folder}:")
    for shot in shots:
        print(f"  {shot.name}")
    for note in sorted(set(watcher.notes)):
        print(f"ui: note: {note}")
    problems = ([stuck] if stuck else []) + watcher.problems
    for problem in problems:
        print(f"ui: FAILED: {problem}")
    if not problems:
        print(
            "ui: ok: logged in; integration page, device page and last detection loaded, no errors"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
