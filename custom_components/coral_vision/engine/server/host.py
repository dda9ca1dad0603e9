"""The models the server runs: each loaded model is one Dispatcher over every configured device.

A model is a catalog id (its files fetched and verified by the engine's downloader, the variant
chosen for the devices) or a file in the models folder ("name.tflite", with "name.labels.txt"
and, for "name_edgetpu.tflite", the CPU twin "name.tflite" beside it). Ids are checked names,
never paths. Models deployed or uploaded through the API are remembered in the data folder and
loaded again at the next start, with the configured ones.

Two models on one Edge TPU each get an executor on it; libedgetpu shares the device between
their interpreters, so they take turns on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import aiohttp

from ..errors import CoralVisionError, ModelError
from ..inference.devices import EdgeTpu, list_edge_tpus
from ..inference.dispatcher import Dispatcher
from ..inference.stats import ExecutorStats
from ..models import store
from ..models.catalog import CatalogEntry, load_catalog
from ..models.download import ensure_model
from ..models.labels import Labels, parse_labels
from ..models.model import Model, load_model
from ..results import FrameResult, Task
from ..runtime import Runtime
from .options import MODEL_ID, MODEL_SUFFIX, ServerOptions

_LOGGER = logging.getLogger(__name__)

# The default detector per device, as the integration picks it: TensorFlow's SSD on the CPU
# (in the shared offline mirror), Coral's compiled SSD MobileNet v2 on an Edge TPU.
DEFAULT_MODELS = {"cpu": "tf_coco_ssd_mobilenet_v1", "edgetpu": "ssd_mobilenet_v2_coco"}
# Executors keep results at or above this score, at most MAX_TOP_K of them; each request then
# narrows them with its own min_score and top_k.
SCORE_FLOOR = 0.05
MAX_TOP_K = 100
LABELS_SUFFIX = ".labels.txt"
EDGETPU_STEM = "_edgetpu"
STATE_FILE = "models.json"
_RATE_WINDOW_S = 10.0

type Origin = Literal["catalog", "file", "upload"]
type ListTpus = Callable[[], Sequence[EdgeTpu]]


class UnknownModelError(CoralVisionError):
    """No loaded, stored or catalog model has this id."""


class ModelConflictError(CoralVisionError):
    """The request does not fit the model (its task) or takes an id that is not free."""


class RateMeter:
    """Frames per second over the last few seconds."""

    def __init__(self, window: float = _RATE_WINDOW_S) -> None:
        """Count frames in a sliding window of `window` seconds."""
        self._window = window
        self._times: deque[float] = deque(maxlen=100_000)

    def tick(self) -> None:
        """A frame finished now."""
        self._times.append(time.monotonic())

    def rate(self) -> float:
        """Frames per second over the window."""
        cutoff = time.monotonic() - self._window
        while self._times and self._times[0] < cutoff:
            self._times.popleft()
        return len(self._times) / self._window


@dataclass(eq=False)
class Loaded:
    """A model the server runs, with the dispatcher that runs it."""

    id: str
    origin: Origin
    model: Model
    cpu_model: Model | None
    dispatcher: Dispatcher
    files: tuple[Path, ...]
    entry: CatalogEntry | None = None
    rate: RateMeter = field(default_factory=RateMeter)

    @property
    def task(self) -> Task:
        """Detection or classification."""
        return self.model.task

    @property
    def variant(self) -> str:
        """Which build runs: "edgetpu" (compiled) or "cpu"."""
        return "edgetpu" if self.model.edgetpu else "cpu"


def resolve_devices(wanted: Sequence[str], list_tpus: ListTpus) -> tuple[EdgeTpu | None, ...]:
    """The accelerators to open (None: the CPU); "all" is every Edge TPU, else the CPU."""
    found = list(list_tpus())
    if tuple(wanted) == ("all",):
        return tuple(found) or (None,)
    present = {tpu.device: tpu for tpu in found}
    # A TPU not plugged in yet is opened by name: its executor runs on the CPU until it appears.
    return tuple(
        None if device == "cpu" else present.get(device) or EdgeTpu.unlisted(device)
        for device in wanted
    )


def narrowed(result: FrameResult, min_score: float, top_k: int) -> FrameResult:
    """The result keeping only what scores at least `min_score`, at most `top_k` of each."""
    return replace(
        result,
        detections=tuple(d for d in result.detections if d.score >= min_score)[:top_k],
        classes=tuple(c for c in result.classes if c.score >= min_score)[:top_k],
    )


class ModelHost:
    """Loads, runs and removes the server's models; management calls run one at a time."""

    def __init__(
        self,
        options: ServerOptions,
        *,
        runtime: Runtime | None = None,
        list_tpus: ListTpus = list_edge_tpus,
        on_result: Callable[[Loaded, str, float | None], None] | None = None,
    ) -> None:
        """Serve `options`' models; `runtime` and `list_tpus` stand in for the real ones."""
        self.options = options
        self.devices: tuple[EdgeTpu | None, ...] = ()
        self.catalog: dict[str, CatalogEntry] = {}
        self.failed: dict[str, str] = {}
        self._runtime = runtime
        self._list_tpus = list_tpus
        self._on_result = on_result
        self._loaded: dict[str, Loaded] = {}
        self._lock = asyncio.Lock()
        self._sources: Counter[tuple[str, str]] = Counter()

    @property
    def device_kind(self) -> str:
        """The catalog's device kind of the devices: "usb"/"pci" with an Edge TPU, else "cpu"."""
        return next((tpu.kind for tpu in self.devices if tpu is not None), "cpu")

    @property
    def loaded(self) -> tuple[Loaded, ...]:
        """The models running now, in the order they were loaded."""
        return tuple(self._loaded.values())

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Find the devices and load the configured (else the default) and remembered models."""
        self.catalog = await asyncio.to_thread(load_catalog)
        self.devices = await asyncio.to_thread(
            resolve_devices, self.options.devices, self._list_tpus
        )
        default = DEFAULT_MODELS["cpu" if self.device_kind == "cpu" else "edgetpu"]
        remembered = await asyncio.to_thread(self._read_state)
        wanted = list(self.options.models or ([] if remembered else [default]))
        wanted += [spec for spec in remembered if spec not in wanted]
        async with self._lock:
            for spec in wanted:
                model_id = spec.removesuffix(MODEL_SUFFIX)
                try:
                    self._loaded[model_id] = await self._open(spec, session)
                except CoralVisionError as err:
                    self.failed[model_id] = str(err)
                    _LOGGER.error("Cannot load the model %s: %s", spec, err)

    def get(self, model_id: str) -> Loaded:
        """The loaded model with this id; UnknownModelError when there is none."""
        loaded = self._loaded.get(model_id)
        if loaded is None:
            raise UnknownModelError(f"no model {model_id!r} is loaded")
        return loaded

    def detector(self) -> Loaded:
        """The first loaded detection model, which DeepStack's /v1/vision/detection runs."""
        for loaded in self._loaded.values():
            if loaded.task == "detection":
                return loaded
        raise UnknownModelError("no detection model is loaded")

    async def run(self, loaded: Loaded, source: str, image: bytes) -> FrameResult:
        """Run an image on a model as `source`'s next frame; per-source order holds."""
        dispatcher = loaded.dispatcher
        key = (loaded.id, source)
        started = time.perf_counter()
        try:
            device = dispatcher.executor_for(source).name.partition("#")[0]
        except CoralVisionError:
            device = "none"
        self._sources[key] += 1
        try:
            result = await dispatcher.run(source, image)
        except CoralVisionError:
            self._report(loaded, device, None)
            raise
        finally:
            self._sources[key] -= 1
            if not self._sources[key]:
                # Nothing of the source is in flight: its line keeps nothing worth remembering.
                del self._sources[key]
                dispatcher.forget(source)
        loaded.rate.tick()
        self._report(loaded, device, (time.perf_counter() - started) * 1000)
        return result

    async def deploy(self, model_id: str, session: aiohttp.ClientSession) -> Loaded:
        """Fetch a catalog model for the devices and load it (again, if it was)."""
        if model_id not in self.catalog:
            raise UnknownModelError(f"the catalog has no model {model_id!r}")
        async with self._lock:
            loaded = await self._open(model_id, session)
            await self._install(loaded)
            return loaded

    async def upload(self, name: str, content: bytes, labels: bytes | None) -> Loaded:
        """Check a custom model (and labels), keep it as name.tflite and load it."""
        if not MODEL_ID.match(name):
            raise ModelConflictError(f"{name!r} is not a model name (letters, digits, _ and -)")
        if name in self.catalog:
            raise ModelConflictError(f"{name!r} is a catalog model's id; choose another name")
        async with self._lock:
            model = await asyncio.to_thread(_check_upload, name, content, labels)
            # Opened from memory first: the folder changes only for a model that runs here.
            dispatcher = await asyncio.to_thread(self._dispatcher, model, None)
            try:
                files = await asyncio.to_thread(
                    _keep_upload, self.options.models_dir, name, content, labels
                )
            except BaseException:
                await asyncio.to_thread(dispatcher.close)
                raise
            loaded = Loaded(name, "upload", model, None, dispatcher, files)
            await self._install(loaded)
            return loaded

    async def remove(self, model_id: str) -> None:
        """Unload a model and delete its files (those no other loaded model uses)."""
        if not MODEL_ID.match(model_id):
            raise UnknownModelError(f"no model {model_id!r}")
        async with self._lock:
            loaded = self._loaded.pop(model_id, None)
            self.failed.pop(model_id, None)
            folder = self.options.models_dir
            files: Sequence[Path]
            if loaded is None:
                files = await asyncio.to_thread(self._stored_files, model_id)
                if not files:
                    raise UnknownModelError(f"no model {model_id!r} is loaded or stored")
            else:
                await asyncio.to_thread(loaded.dispatcher.close)
                files = loaded.files
            used = {path for other in self._loaded.values() for path in other.files}
            await asyncio.to_thread(_remove_files, folder, [f for f in files if f not in used])
            await asyncio.to_thread(self._write_state)

    def stored(self) -> list[store.StoredModel]:
        """The models folder's files and which loaded models use them (blocking)."""
        references: dict[Path, list[str]] = {}
        for loaded in self._loaded.values():
            for path in loaded.files:
                references.setdefault(path, []).append(loaded.id)
        return store.list_models(self.options.models_dir, references)

    async def close(self) -> None:
        """Close every dispatcher (their threads joined); frames still queued fail."""
        async with self._lock:
            loaded, self._loaded = list(self._loaded.values()), {}
        await asyncio.gather(*(asyncio.to_thread(m.dispatcher.close) for m in loaded))

    # -- helpers -----------------------------------------------------------------------------

    def _report(self, loaded: Loaded, device: str, latency_ms: float | None) -> None:
        if self._on_result is not None:
            self._on_result(loaded, device, latency_ms)

    async def _install(self, loaded: Loaded) -> None:
        """Put a newly opened model in place of one with its id, and remember it."""
        previous = self._loaded.pop(loaded.id, None)
        self._loaded[loaded.id] = loaded
        self.failed.pop(loaded.id, None)
        if previous is not None:
            await asyncio.to_thread(previous.dispatcher.close)
        await asyncio.to_thread(self._write_state)

    async def _open(self, spec: str, session: aiohttp.ClientSession) -> Loaded:
        """Fetch (catalog) or find (file) a model and open its dispatcher."""
        folder = self.options.models_dir
        if spec in self.catalog:
            entry = self.catalog[spec]
            local = await ensure_model(
                session, entry, self.device_kind, folder, mirror=self.options.mirror
            )
            model, twin = await asyncio.to_thread(
                _load_pair, local.model, local.cpu_twin, local.labels, entry.name
            )
            dispatcher = await asyncio.to_thread(self._dispatcher, model, twin)
            return Loaded(spec, "catalog", model, twin, dispatcher, local.files, entry)
        if not spec.endswith(MODEL_SUFFIX):
            raise UnknownModelError(
                f"the catalog has no model {spec!r} (a file must be named like {spec}.tflite)"
            )
        name = spec.removesuffix(MODEL_SUFFIX)
        path, twin_path, labels = await asyncio.to_thread(_file_model, folder, name)
        model, twin = await asyncio.to_thread(_load_pair, path, twin_path, labels, name)
        dispatcher = await asyncio.to_thread(self._dispatcher, model, twin)
        files = tuple(p for p in (path, twin_path, labels) if p is not None)
        origin: Origin = "upload" if spec in await asyncio.to_thread(self._read_state) else "file"
        return Loaded(name, origin, model, twin, dispatcher, files)

    def _dispatcher(self, model: Model, twin: Model | None) -> Dispatcher:
        """Open the model on every configured device (blocking)."""
        return Dispatcher.open(
            model,
            self.devices,
            cpu_model=twin,
            threshold=SCORE_FLOOR,
            top_k=MAX_TOP_K,
            runtime=self._runtime,
            list_tpus=self._list_tpus,
        )

    def _stored_files(self, model_id: str) -> list[Path]:
        folder = self.options.models_dir
        candidates = [folder / f"{model_id}{MODEL_SUFFIX}", folder / f"{model_id}{LABELS_SUFFIX}"]
        return [path for path in candidates if path.is_file()]

    def _read_state(self) -> list[str]:
        """The models deployed or uploaded through the API, as load specs (blocking)."""
        try:
            document = json.loads((self.options.data_dir / STATE_FILE).read_text("utf-8"))
            specs = document["models"]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        if not isinstance(specs, list):
            return []
        return [
            spec
            for spec in specs
            if isinstance(spec, str) and MODEL_ID.match(spec.removesuffix(MODEL_SUFFIX))
        ]

    def _write_state(self) -> None:
        specs = [
            m.id if m.origin == "catalog" else f"{m.id}{MODEL_SUFFIX}"
            for m in self._loaded.values()
            if m.origin != "file"
        ]
        specs = [spec for spec in specs if spec not in self.options.models]
        text = json.dumps({"models": specs}) + "\n"
        store.write_atomically(
            self.options.data_dir / STATE_FILE, lambda out: out.write(text.encode()), _accept
        )


def _accept(_: Path) -> None:
    """A check that takes any file."""


def _load_pair(
    path: Path, twin: Path | None, labels: Path | None, name: str
) -> tuple[Model, Model | None]:
    """A model and, for a compiled one, its CPU twin with the same labels (blocking)."""
    model = load_model(path, labels=labels, name=name)
    return model, load_model(twin, labels=model.labels, name=name) if twin else None


def _file_model(folder: Path, name: str) -> tuple[Path, Path | None, Path | None]:
    """A file model's path, its CPU twin and its labels, each when present (blocking)."""
    path = folder / f"{name}{MODEL_SUFFIX}"
    if not path.is_file():
        raise UnknownModelError(f"the models folder has no {path.name}")
    twin_name = name.removesuffix(EDGETPU_STEM)
    twin = folder / f"{twin_name}{MODEL_SUFFIX}" if twin_name != name else None
    if twin is not None and not twin.is_file():
        twin = None
    labels = next(
        (
            candidate
            for candidate in (
                folder / f"{name}{LABELS_SUFFIX}",
                folder / f"{twin_name}{LABELS_SUFFIX}",
            )
            if candidate.is_file()
        ),
        None,
    )
    return path, twin, labels


def _check_upload(name: str, content: bytes, labels: bytes | None) -> Model:
    """Read an uploaded model (and labels) with the bounded reader; ModelError when bad."""
    parsed: Labels | None = None
    if labels is not None:
        try:
            text = labels.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ModelError(f"{name}: the labels are not UTF-8 text") from err
        parsed = parse_labels(text)
    return load_model(content, labels=parsed, name=name)


def _keep_upload(folder: Path, name: str, content: bytes, labels: bytes | None) -> tuple[Path, ...]:
    """Write an upload's files atomically; a replaced upload's old labels go (blocking)."""
    model_path = folder / f"{name}{MODEL_SUFFIX}"
    labels_path = folder / f"{name}{LABELS_SUFFIX}"
    store.write_atomically(model_path, lambda out: out.write(content), _accept)
    if labels is None:
        store.discard(labels_path)
        return (model_path,)
    store.write_atomically(labels_path, lambda out: out.write(labels), _accept)
    return model_path, labels_path


def _remove_files(folder: Path, files: Sequence[Path]) -> None:
    for path in files:
        with contextlib.suppress(ModelError, OSError):
            store.remove_model(folder, path)


def describe(loaded: Loaded) -> dict[str, Any]:
    """A loaded model as /v1/status and /v1/models list it."""
    model = loaded.model
    pool = loaded.dispatcher.pool_stats()
    return {
        "id": loaded.id,
        "name": loaded.entry.name if loaded.entry else model.name,
        "origin": loaded.origin,
        "task": model.task,
        "variant": loaded.variant,
        "input_size": [model.input.width, model.input.height],
        "labels": model.labels.names(),
        "statistics": {
            # p50 weighted by each device's frames, p95 the worst device's.
            **statistics_of(pool.total),
            "frames_per_s": round(loaded.rate.rate(), 2),
            "on_tpu": pool.on_tpu,
        },
    }


def statistics_of(stats: ExecutorStats) -> dict[str, Any]:
    """Counters as the API names them, for a model's pool or one device's executor."""
    return {
        "inference_ms_p50": stats.inference_p50_ms,
        "inference_ms_p95": stats.inference_p95_ms,
        "frames_done": stats.frames_done,
        "frames_dropped": stats.frames_dropped,
        "frames_failed": stats.frames_failed,
        "frames_rejected": stats.frames_rejected,
        "frames_timed_out": stats.frames_timed_out,
        "queue_depth": stats.queue_depth,
        "queue_limit": stats.queue_limit,
    }
