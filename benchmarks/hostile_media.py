"""Hostile images and model links: peak memory and time, the code before hardening against now.

Run from the repository: .envs/oldest/bin/python benchmarks/hostile_media.py [--baseline DIR]

Each case runs in its own subprocess, once on a baseline copy of the engine (default: commit
8dec458, extracted with `git archive` into a temporary folder, so it works on a clean clone) and
once on the working tree, under a memory rlimit (--memory) and a timeout (--timeout) that guard
against the old code. A case reports the wall time of the call, the growth of the process's peak
RSS during it (Pillow's pixels live outside tracemalloc's view) and the outcome. The cases:

- images through prepare_frame: the 86 KB single-colour 9400x9400 PNG, a GIF whose 10x10 screen
  holds an 8000x6000 frame, a PNG with 3000 colour profiles, JPEG and PNG EXIF bombs, a JPEG with
  a million empty markers and a GIF with an 8 MB comment;
- model links through the config flow's fetch, from a 127.0.0.1 aiohttp server in the same
  process: an endless stream (the server stops after 2 GiB) and a server that trickles a byte
  every 50 ms (the new code's default deadline ends it after a minute; --no-trickle skips it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import struct
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "8dec458"
MIB = 2**20


# -- the hostile images ------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def solid_png() -> bytes:
    """9400x9400 grey, one colour, compressed row by row: 86 KB."""
    packer = zlib.compressobj(9)
    row = b"\0" * 9401
    body = b"".join(packer.compress(row) for _ in range(9400)) + packer.flush()
    header = struct.pack(">IIBBBBB", 9400, 9400, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def _small_png(*extra: bytes) -> bytes:
    data = _encode(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG")
    return data[:33] + b"".join(extra) + data[33:]


def gif_big_frame() -> bytes:
    """A GIF with a 10x10 logical screen and an 8000x6000 first frame."""
    data = bytearray(_encode(Image.new("P", (8000, 6000)), "GIF"))
    data[6:10] = struct.pack("<HH", 10, 10)
    return bytes(data)


def png_profiles() -> bytes:
    """3000 iCCP chunks, each inflating to 1 MB."""
    profile = _chunk(b"iCCP", b"p\0\0" + zlib.compress(b"\0" * 1_000_000, 9))
    return _small_png(profile * 3000)


def _exif_bomb(entries: int, size: int) -> bytes:
    table = b"".join(struct.pack("<HHII", 0x9000 + i, 7, size - 1, 1) for i in range(entries))
    return (b"II*\0" + struct.pack("<IH", 8, entries) + table + b"\0\0\0\0").ljust(size, b"\0")


def jpeg_exif_bomb() -> bytes:
    """A 60 KB JPEG whose 4900 EXIF entries each point at the whole EXIF block."""
    return _encode(Image.new("RGB", (10, 10)), "JPEG", exif=b"Exif\0\0" + _exif_bomb(4900, 60_000))


def png_exif_bomb() -> bytes:
    """A 300 KB PNG whose 2000 EXIF entries each point at the whole EXIF block."""
    return _small_png(_chunk(b"eXIf", _exif_bomb(2000, 300_000)))


def jpeg_markers() -> bytes:
    """A valid 10x10 JPEG behind a million empty APP3 segments."""
    data = _encode(Image.new("RGB", (10, 10)), "JPEG")
    return data[:2] + b"\xff\xe3\x00\x02" * 1_000_000 + data[2:]


def gif_comment() -> bytes:
    """A 10x10 GIF with an 8 MB comment (Pillow joins its blocks in quadratic time)."""
    data = _encode(Image.new("P", (10, 10)), "GIF")
    start = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    comment = b"!\xfe" + (b"\xff" + b"c" * 255) * (8_000_000 // 255) + b"\0"
    return data[:start] + comment + data[start:]


IMAGES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "png_9400": ("86 KB PNG, 9400x9400 one colour", solid_png),
    "gif_big_frame": ("GIF, 10x10 screen, 8000x6000 frame", gif_big_frame),
    "png_profiles": ("PNG with 3000 colour profiles", png_profiles),
    "jpeg_exif_bomb": ("60 KB JPEG, EXIF bomb", jpeg_exif_bomb),
    "png_exif_bomb": ("300 KB PNG, EXIF bomb", png_exif_bomb),
    "jpeg_markers": ("JPEG, a million empty markers", jpeg_markers),
    "gif_comment": ("GIF with an 8 MB comment", gif_comment),
}
LINKS = {
    "link_endless": "model link, endless stream",
    "link_trickle": "model link, a byte every 50 ms",
}


# -- one case in a child process ---------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, json, os, resource, sys, tempfile, time, types
    code, case, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    sys.path.insert(0, code)
    package = types.ModuleType("custom_components.coral_vision")
    package.__path__ = [os.path.join(code, "custom_components", "coral_vision")]
    sys.modules["custom_components.coral_vision"] = package

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    async def serve(kind):
        from aiohttp import web

        async def handler(request):
            response = web.StreamResponse()
            await response.prepare(request)
            piece, pause = (b"\\0" * 65536, 0) if kind == "endless" else (b"T", 0.05)
            sent = 0
            try:
                while sent < 2 * 2**30:  # bounded: 2 GiB at most
                    await response.write(piece)
                    sent += len(piece)
                    await asyncio.sleep(pause)
            except ConnectionError:
                pass
            return response

        app = web.Application()
        app.router.add_get("/model.tflite", handler)
        runner = web.AppRunner(app, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/model.tflite"

    async def fetch(kind):
        import aiohttp
        runner, url = await serve(kind)
        try:
            async with aiohttp.ClientSession() as session:
                with tempfile.TemporaryDirectory() as folder:
                    try:
                        from custom_components.coral_vision.engine.models.links import fetch_model
                    except ImportError:  # the baseline buffered the body in memory
                        from custom_components.coral_vision.engine.models.inspect import (
                            fetch_model_bytes,
                        )
                        return await fetch_model_bytes(session, url)
                    return await fetch_model(session, url, __import__("pathlib").Path(folder))
        finally:
            await runner.cleanup()

    if case.startswith("link_"):
        import aiohttp
        call = lambda: asyncio.run(fetch(case[5:]))
    else:
        import numpy as np
        from custom_components.coral_vision.engine.models.model import InputSpec
        from custom_components.coral_vision.engine.vision.preprocess import prepare_frame
        data = open(arg, "rb").read()
        spec = InputSpec(300, 300, 3, np.dtype(np.uint8), 0.0078125, 128, 0)
        call = lambda: prepare_frame(data, spec)
    before = peak()
    started = time.perf_counter()
    try:
        call()
        outcome = "accepted"
    except MemoryError:
        outcome = "MemoryError"
    except Exception as err:
        outcome = f"{type(err).__name__}: {err}"
    print(json.dumps({
        "seconds": time.perf_counter() - started,
        "grown": max(0, peak() - before),
        "outcome": outcome,
    }))
    """
)


def run_case(code: Path, case: str, arg: str, memory: int, timeout: float) -> dict[str, object]:
    """Run one case on one copy of the code in a fresh, limited process."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(code), case, arg],
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"seconds": None, "grown": None, "outcome": f"still running after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {
            "seconds": time.perf_counter() - started,
            "grown": None,
            "outcome": f"crashed: {tail[:80]}",
        }
    result: dict[str, object] = json.loads(lines[-1])
    return result


def baseline_copy(folder: Path) -> Path:
    """The engine at BASELINE_COMMIT, extracted into `folder`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BASELINE_COMMIT, "custom_components"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as bundle:
        bundle.extractall(folder, filter="data")
    return folder


def _cell(result: dict[str, object]) -> str:
    seconds, grown = result["seconds"], result["grown"]
    time_text = f"{seconds:7.2f} s" if isinstance(seconds, float) else "      ? s"
    memory_text = f"{grown / MIB:8.0f} MiB" if isinstance(grown, int) else "       ? MiB"
    return f"{time_text} {memory_text}"


def _short(outcome: object, width: int = 60) -> str:
    text = str(outcome).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline",
        type=Path,
        help=f"a copy of the old code (default: git archive {BASELINE_COMMIT})",
    )
    parser.add_argument("--memory", type=int, default=4096, help="MiB per case (default 4096)")
    parser.add_argument("--timeout", type=float, default=90.0, help="s per case (default 90)")
    parser.add_argument("--no-trickle", action="store_true", help="skip the minute-long case")
    parser.add_argument("--only", help="comma-separated case names")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    with tempfile.TemporaryDirectory(prefix="hostile-media-") as scratch:
        root = Path(scratch)
        baseline = args.baseline or baseline_copy(root / "baseline")
        cases: list[tuple[str, str, str]] = []
        for name, (title, make) in IMAGES.items():
            if wanted is None or name in wanted:
                path = root / f"{name}.bin"
                path.write_bytes(make())
                cases.append((name, f"{title} ({os.path.getsize(path) / 1024:.0f} KB)", str(path)))
        for name, title in LINKS.items():
            if (wanted is None or name in wanted) and not (
                args.no_trickle and name == "link_trickle"
            ):
                cases.append((name, title, ""))
        print(f"baseline: {baseline}\ncurrent:  {REPO}\n")
        header = (
            f"{'case':<44} {'before: time, peak growth':>24}   {'after: time, peak growth':>24}"
        )
        print(header + "   after: outcome")
        print("-" * (len(header) + 20))
        for name, title, arg in cases:
            old = run_case(baseline, name, arg, args.memory * MIB, args.timeout)
            new = run_case(REPO, name, arg, args.memory * MIB, args.timeout)
            print(f"{title:<44} {_cell(old):>24}   {_cell(new):>24}   {_short(new['outcome'])}")
            print(f"{'':<44} before: {_short(old['outcome'], 100)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
