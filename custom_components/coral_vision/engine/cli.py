"""The coral-vision command: list Edge TPUs, classify or detect in images, measure a model.

Usage (run as ``python -m engine.cli`` with custom_components/coral_vision on sys.path, or via
scripts/coral-vision):

  coral-vision devices [--json]
  coral-vision classify --model M [--labels L] [--top-k K] [--threshold T] IMAGE...
  coral-vision detect --model M [--labels L] [--threshold T] [--top-k K] IMAGE...  (SSD or YOLO)
  coral-vision bench --model M [--image I] [--frames N] [--sources S]
  coral-vision inspect MODEL [--labels FILE] [--json]   (a file or a model URL)
  coral-vision serve [--host H] [--port P] [--api-key K] [--devices D] [--model M]...
                                                     (the HTTP server: see engine/server)

Every command but devices takes --device (auto: the first Edge TPU, else the CPU; cpu; usb:N;
pci:N), --cpu-model (the CPU version of an *_edgetpu.tflite model) and --num-threads.

With --json each image prints one JSON object on its own line:
  detect   {"image", "device", "inference_ms",
            "detections": [{"label", "id", "score", "box": [xmin, ymin, xmax, ymax]}]}
           (boxes in the image's own pixels)
  classify {"image", "device", "inference_ms", "classes": [{"label", "id", "score"}]}
  bench    {"model", "device", "frames", "sources", "seconds", "frames_per_s",
            "inference_ms_p50", "inference_ms_p95", "preprocess_ms_mean"}
  devices  a list of {"device", "kind", "index", "label", "path", "temperature_c"}
"device" is "cpu" or the Edge TPU's device string ("usb:0", "pci:0").

Errors (bad arguments, unreadable, corrupt or oversized images, bad models) print one line
starting with "error:" on stderr and the exit status is non-zero: 2 for bad arguments, 1
otherwise. With several images, each bad one gets its line and the others still run. An image
file over 64 MiB is refused before it is read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NoReturn, TextIO

import aiohttp
from PIL import Image

from .errors import CoralVisionError, DownloadError, ImageError, ModelError
from .inference.delegate import BackendInfo
from .inference.devices import EdgeTpu, list_edge_tpus, parse_device
from .inference.executor import Executor
from .inference.preparation import pool_size
from .inference.stats import percentile
from .models.inspect import ModelReport, format_report, inspect_model
from .models.links import fetch_model
from .models.model import Model, load_model
from .results import FrameResult
from .server.__main__ import main as serve
from .vision.image_guard import MAX_IMAGE_BYTES

PROG = "coral-vision"
# Images in flight at once: enough to keep the accelerator busy while the pool decodes.
_WINDOW = 2 * pool_size()


class UsageError(Exception):
    """Bad command-line arguments."""


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports mistakes in one line instead of usage plus message."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage and exiting."""
        raise UsageError(f"{message} (see {self.prog} --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["serve"]:
        # The server parses its own options and runs until a signal.
        return serve(arguments[1:], prog=f"{PROG} serve")
    if arguments[:1] == ["inspect"]:
        # inspect parses its own arguments.
        with _native_stderr_silenced():
            return run_inspect(arguments[1:])
    try:
        args = build_parser().parse_args(arguments)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    # TFLite's C++ code prints INFO lines on file descriptor 2; only --verbose shows them.
    quiet = contextlib.nullcontext() if args.verbose else _native_stderr_silenced()
    with quiet:
        try:
            status: int = args.handler(args)
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except (CoralVisionError, OSError) as err:
            print(f"error: {_one_line(err)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        sys.stdout.flush()
    return status


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    parser = _Parser(prog=PROG, description="Coral Vision: Edge TPU inference from the shell.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON, one object per line")
    common.add_argument("-v", "--verbose", action="store_true", help="show debug logs")

    running = _Parser(add_help=False)
    running.add_argument("--model", required=True, type=Path, help="a .tflite model")
    running.add_argument("--labels", type=Path, help="a labels file (default: model metadata)")
    running.add_argument("--device", default="auto", help="auto (default), cpu, usb:N or pci:N")
    running.add_argument(
        "--cpu-model", type=Path, help="CPU version of an *_edgetpu.tflite model, for fallback"
    )
    running.add_argument("--num-threads", type=_positive_int, help="CPU interpreter threads")

    devices = commands.add_parser("devices", parents=[common], help="list Edge TPUs")
    devices.add_argument("--sys-root", type=Path, default=Path("/sys"), help=argparse.SUPPRESS)
    devices.add_argument("--dev-root", type=Path, default=Path("/dev"), help=argparse.SUPPRESS)
    devices.set_defaults(handler=run_devices)

    classify = commands.add_parser("classify", parents=[common, running], help="classify images")
    classify.add_argument("--top-k", type=_positive_int, default=5, help="classes (default 5)")
    classify.add_argument(
        "--threshold", type=_score, default=0.0, help="minimum score (default 0.0)"
    )
    classify.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    classify.set_defaults(handler=run_images, task="classification")

    detect = commands.add_parser("detect", parents=[common, running], help="detect objects")
    detect.add_argument("--threshold", type=_score, default=0.5, help="minimum score (default 0.5)")
    detect.add_argument("--top-k", type=_positive_int, default=25, help="objects (default 25)")
    detect.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    detect.set_defaults(handler=run_images, task="detection")

    bench = commands.add_parser(
        "bench", parents=[common, running], help="measure frames per second"
    )
    bench.add_argument("--image", type=Path, help="image to feed (default: a generated 720p JPEG)")
    bench.add_argument("--frames", type=_positive_int, default=100, help="frames (default 100)")
    bench.add_argument(
        "--sources", type=_positive_int, default=1, help="concurrent sources (default 1)"
    )
    bench.set_defaults(handler=run_bench, threshold=0.5, top_k=10)

    inspect = commands.add_parser(
        "inspect", add_help=False, help="check a model: task, inputs, outputs, Edge TPU ops"
    )
    # main() hands "inspect ..." to run_inspect before parsing; listed here for --help.
    inspect.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    serve_ = commands.add_parser("serve", add_help=False, help="serve the engine over HTTP")
    # main() hands "serve ..." to the server before parsing; listed here for --help.
    serve_.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


# -- commands ----------------------------------------------------------------------------------


def run_devices(args: argparse.Namespace) -> int:
    """Print the Edge TPUs found."""
    tpus = list_edge_tpus(args.sys_root, args.dev_root)
    if args.json:
        print(json.dumps([_tpu_json(t) for t in tpus]))
        return 0
    if not tpus:
        print("no Edge TPU found; models run on the CPU")
    for tpu in tpus:
        temperature = "" if tpu.temperature_c is None else f"  {tpu.temperature_c:.1f} °C"
        print(f"{tpu.device:8} {tpu.label:18} {tpu.path}{temperature}")
    return 0


def run_images(args: argparse.Namespace) -> int:
    """Classify or detect in every image; one result (or one error line) per image."""
    model = _load(args)
    if model.task != args.task:
        raise UsageError(
            f"{model.name} is a {model.task} model; use the "
            f"{'detect' if model.task == 'detection' else 'classify'} command"
        )
    failed = 0
    with _open_executor(args, model) as executor:
        for image, outcome in _run_all(executor, args.images):
            if isinstance(outcome, CoralVisionError | OSError):
                failed += 1
                print(f"error: {image}: {_one_line(outcome)}", file=sys.stderr)
            else:
                _print_result(args, image, outcome, executor.backend_info)
    return 1 if failed else 0


def run_bench(args: argparse.Namespace) -> int:
    """Run frames through the executor and report frames per second and latency."""
    model = _load(args)
    data = read_image(args.image) if args.image else _generated_jpeg()
    with _open_executor(args, model) as executor:
        executor.run_sync("warm-up", data)
        seconds, results = asyncio.run(_bench(executor, data, args.frames, args.sources))
        info = executor.backend_info
    times = [r.inference_ms for r in results]
    report = {
        "model": model.name,
        "device": _device(info),
        "frames": len(results),
        "sources": args.sources,
        "seconds": round(seconds, 3),
        "frames_per_s": round(len(results) / seconds, 1),
        "inference_ms_p50": _round(percentile(times, 0.5)),
        "inference_ms_p95": _round(percentile(times, 0.95)),
        "preprocess_ms_mean": _round(sum(r.preprocess_ms for r in results) / len(results)),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{model.name} on {info.label if info else '?'}: {report['frames']} frames from "
            f"{args.sources} source(s) in {report['seconds']} s = {report['frames_per_s']} "
            f"frames/s; inference p50 {report['inference_ms_p50']} ms, "
            f"p95 {report['inference_ms_p95']} ms; preprocess {report['preprocess_ms_mean']} ms"
        )
    return 0


def run_inspect(argv: list[str]) -> int:
    """`inspect MODEL [--labels FILE] [--json]`: print the report; 0 if supported, 1 if not."""
    args = list(argv)
    if args[:1] == ["inspect"]:
        args = args[1:]
    parser = argparse.ArgumentParser(
        prog="coral-vision inspect", description="Check a TensorFlow Lite model."
    )
    parser.add_argument("model", help="a .tflite file or a model URL (TF Hub, Kaggle, direct)")
    parser.add_argument("--labels", type=Path, help="a labels file to check against the model")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    options = parser.parse_args(args)
    try:
        if options.model.startswith(("http://", "https://")):
            report = _inspect_link(options.model, options.labels)
        else:
            report = inspect_model(Path(options.model), labels=options.labels)
    except (ModelError, DownloadError) as err:
        if options.json:
            print(json.dumps({"supported": False, "error": str(err)}, indent=2))
        else:
            print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2) if options.json else format_report(report))
    return 0 if report.supported else 1


def _inspect_link(url: str, labels: Path | None) -> ModelReport:
    """Download a model link into a temporary folder, check it there; nothing is kept."""
    with tempfile.TemporaryDirectory(prefix="coral-vision-") as folder:
        model = asyncio.run(_download(url, Path(folder)))
        return inspect_model(model, labels=labels)


async def _download(url: str, folder: Path) -> Path:
    async with aiohttp.ClientSession() as session:
        return await fetch_model(session, url, folder)


# -- helpers -----------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Model:
    model = load_model(args.model, labels=args.labels)
    args.cpu_model_loaded = (
        load_model(args.cpu_model, labels=model.labels) if args.cpu_model else None
    )
    return model


def _pick_tpu(device: str) -> EdgeTpu | None:
    """Return the Edge TPU --device names: None for cpu, the first one for auto."""
    if device == "cpu":
        return None
    tpus = list_edge_tpus()
    if device == "auto":
        return tpus[0] if tpus else None
    if parse_device(device) is None:
        raise UsageError(f"--device {device!r}: expected auto, cpu, usb:N or pci:N")
    for tpu in tpus:
        if tpu.device == device:
            return tpu
    found = ", ".join(t.device for t in tpus) or "none"
    raise UsageError(f"--device {device}: no such Edge TPU (found: {found})")


@contextlib.contextmanager
def _open_executor(args: argparse.Namespace, model: Model) -> Iterator[Executor]:
    executor = Executor(
        model,
        _pick_tpu(args.device),
        cpu_model=args.cpu_model_loaded,
        num_threads=args.num_threads,
        queue_size=max(_WINDOW, args.sources if hasattr(args, "sources") else 1),
        timeout=None,
        threshold=args.threshold,
        top_k=args.top_k,
    )
    try:
        info = executor.backend_info
        if info is not None and info.fallback_reason is not None:
            print(f"warning: {info.detail}", file=sys.stderr)
        yield executor
    finally:
        executor.close()


def _run_all(
    executor: Executor, images: Sequence[Path]
) -> Iterator[tuple[Path, FrameResult | CoralVisionError | OSError]]:
    """Yield each image's result in order, keeping a few in flight so decoding overlaps."""
    pending: deque[tuple[Path, Future[FrameResult] | OSError | ImageError]] = deque()
    queue = iter(enumerate(images))

    def feed() -> None:
        for index, image in queue:
            try:
                data = read_image(image)
            except (OSError, ImageError) as err:
                pending.append((image, err))
            else:
                # The position keeps two mentions of one file from superseding each other.
                pending.append((image, executor.submit(f"{index}:{image}", data)))
            if len(pending) >= _WINDOW:
                return

    feed()
    while pending:
        image, job = pending.popleft()
        if isinstance(job, OSError):
            yield image, _unreadable(image, job)
        elif isinstance(job, ImageError):
            yield image, job
        else:
            try:
                yield image, job.result()
            except CoralVisionError as err:
                yield image, err
        feed()


def read_image(path: Path) -> bytes:
    """An image file's bytes; one over MAX_IMAGE_BYTES is refused before it is read."""
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise ImageError(_too_large(size))
    with path.open("rb") as handle:
        # Read no more than the cap even when the size lied (a device, a growing file).
        data = handle.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(_too_large(len(data)))
    return data


def _too_large(size: int) -> str:
    return (
        f"the image is too large: {size} bytes exceeds {MAX_IMAGE_BYTES} "
        f"({MAX_IMAGE_BYTES // 2**20} MiB)"
    )


def _unreadable(image: Path, err: OSError) -> OSError:
    return OSError(f"cannot read the image: {err.strerror or err}")


async def _bench(
    executor: Executor, data: bytes, frames: int, sources: int
) -> tuple[float, list[FrameResult]]:
    """Run `frames` frames split over `sources` concurrent loops; return seconds and results."""
    results: list[FrameResult] = []
    counter = iter(range(frames))

    async def source(name: str) -> None:
        for _ in counter:
            results.append(await executor.run(name, data))

    started = time.perf_counter()
    await asyncio.gather(*(source(f"bench-{i}") for i in range(sources)))
    return time.perf_counter() - started, results


def _print_result(
    args: argparse.Namespace, image: Path, result: FrameResult, info: BackendInfo | None
) -> None:
    device = _device(info)
    record: dict[str, Any] = {
        "image": str(image),
        "device": device,
        "inference_ms": round(result.inference_ms, 2),
    }
    if args.task == "detection":
        record["detections"] = [
            {"label": d.label, "id": d.id, "score": round(d.score, 4), "box": d.box.as_list()}
            for d in result.detections
        ]
    else:
        record["classes"] = [
            {"label": c.label, "id": c.id, "score": round(c.score, 4)} for c in result.classes
        ]
    if args.json:
        print(json.dumps(record))
        return
    width, height = result.image_size
    print(f"{image}  {width}x{height}  {result.backend}  {result.inference_ms:.1f} ms")
    if args.task == "detection":
        if not result.detections:
            print("  nothing above the threshold")
        for d in result.detections:
            box = ", ".join(f"{v:.0f}" for v in d.box.as_list())
            print(f"  {d.score:.2f}  {d.label} ({d.id})  [{box}]")
    else:
        if not result.classes:
            print("  no class above the threshold")
        for c in result.classes:
            print(f"  {c.score:.2f}  {c.label} ({c.id})")


def _device(info: BackendInfo | None) -> str:
    return (info.device if info else None) or "cpu"


def _tpu_json(tpu: EdgeTpu) -> dict[str, Any]:
    return {
        "device": tpu.device,
        "kind": tpu.kind,
        "index": tpu.index,
        "label": tpu.label,
        "path": tpu.path,
        "temperature_c": tpu.temperature_c,
    }


def _generated_jpeg() -> bytes:
    """Return a 1280x720 JPEG with some structure, for benchmarks without an image."""
    image = Image.radial_gradient("L").resize((1280, 720)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _positive_int(text: str) -> int:
    return _parsed(text, int, lambda v: v >= 1, "a whole number of at least 1")


def _score(text: str) -> float:
    return _parsed(text, float, lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1")


def _parsed[T](text: str, kind: Callable[[str], T], ok: Callable[[T], bool], what: str) -> T:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while Python's sys.stderr keeps the real one."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    sys.stderr.flush()
    previous: TextIO = sys.stderr
    sys.stderr = open(saved, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        sys.stderr.close()
        sys.stderr = previous
        os.close(saved)


if __name__ == "__main__":
    sys.exit(main())
