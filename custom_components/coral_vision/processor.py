"""One camera's pipeline: frame → accelerator → filters → confirmation → entities and events."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.util import dt as dt_util

from .accelerator import Accelerator
from .const import (
    CONF_BURST_INTERVAL,
    CONF_CAMERA,
    CONF_CONFIRM_FRAMES,
    CONF_CONFIRM_WINDOW,
    CONF_HOLD_TIME,
    CONF_LABELS,
    CONF_MAX_AREA,
    CONF_MIN_AREA,
    CONF_MIN_SCORE,
    CONF_MOTION_SOURCES,
    CONF_OFF_DELAY,
    CONF_REGION,
    CONF_SAVE_SNAPSHOTS,
    CONF_SCAN_INTERVAL,
    CONF_SCORES,
    DEFAULT_BURST_INTERVAL,
    DEFAULT_HOLD_TIME,
    DEFAULT_MIN_SCORE,
    DOMAIN,
    EVENT_CLEARED,
    EVENT_DETECTED,
    LOGGER,
    MIN_SCAN_INTERVAL,
)
from .engine.camera.filters import ObjectFilter, parse_region
from .engine.camera.tracking import ObjectTracker
from .engine.errors import (
    CoralVisionError,
    DelegateError,
    ExecutorClosedError,
    FrameSupersededError,
)
from .engine.results import BBox, Detection, FrameResult, Task
from .motion import MotionWatch

SNAPSHOTS_KEPT = 200
# While the same objects stay in view, the last-detection image moves on this often: each move is
# a state (a database row), and a frame a second would write 3,600 of them an hour per camera.
IMAGE_REFRESH = timedelta(seconds=60)
CAMERA_TIMEOUT = 10
# How often a camera that stopped answering is tried again when it has no scan timer.
CAMERA_RETRY = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraSettings:
    """A camera subentry's options, parsed once."""

    camera_entity: str
    labels: tuple[str, ...]
    object_filter: ObjectFilter
    scan_interval: float
    confirm_frames: int
    confirm_window: int
    off_delay: float
    save_snapshots: bool
    # Entities whose motion makes the camera scan every burst_interval, until hold_time after.
    motion_sources: tuple[str, ...] = ()
    burst_interval: float = DEFAULT_BURST_INTERVAL
    hold_time: float = DEFAULT_HOLD_TIME

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> CameraSettings:
        """Read a subentry's data (areas are stored in percent of the frame)."""
        labels = tuple(data.get(CONF_LABELS, ()))
        default = float(data.get(CONF_MIN_SCORE, DEFAULT_MIN_SCORE))
        scores = {label: float(data.get(CONF_SCORES, {}).get(label, default)) for label in labels}
        return cls(
            camera_entity=data[CONF_CAMERA],
            labels=labels,
            object_filter=ObjectFilter(
                scores=scores,
                default_score=default,
                min_area=float(data.get(CONF_MIN_AREA, 0)) / 100,
                max_area=float(data.get(CONF_MAX_AREA, 100)) / 100,
                region=parse_region(data.get(CONF_REGION, "")),
            ),
            scan_interval=_scan_interval(data.get(CONF_SCAN_INTERVAL, 5)),
            confirm_frames=int(data.get(CONF_CONFIRM_FRAMES, 1)),
            confirm_window=int(data.get(CONF_CONFIRM_WINDOW, 1)),
            off_delay=float(data.get(CONF_OFF_DELAY, 10)),
            save_snapshots=bool(data.get(CONF_SAVE_SNAPSHOTS, False)),
            motion_sources=tuple(data.get(CONF_MOTION_SOURCES, ())),
            burst_interval=_scan_interval(data.get(CONF_BURST_INTERVAL, DEFAULT_BURST_INTERVAL))
            or DEFAULT_BURST_INTERVAL,
            hold_time=max(0.0, float(data.get(CONF_HOLD_TIME, DEFAULT_HOLD_TIME))),
        )


def _scan_interval(value: Any) -> float:
    """A stored scan interval, raised to the minimum (an entry saved before it had one)."""
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        return 0.0
    return max(seconds, MIN_SCAN_INTERVAL)


@dataclass(frozen=True, slots=True)
class CameraState:
    """What the entities show: the last frame's confirmed objects and when things happened."""

    task: Task
    matches: tuple[Detection, ...] = ()
    active_labels: frozenset[str] = frozenset()
    frame_time: datetime | None = None
    process_time_ms: float | None = None
    last_detection: datetime | None = None
    top_class: str | None = None
    # The last frame with matches, kept encoded; drawn on only when someone asks for it.
    detection_frame: bytes | None = None
    detection_matches: tuple[Detection, ...] = ()
    annotated_time: datetime | None = None
    snapshot: str | None = None
    new: tuple[Detection, ...] = field(default=())
    bursting: bool = False


@dataclass(slots=True)
class BurstCounts:
    """How motion bursts went: how many started, and the frames they processed."""

    started: int = 0
    frames: int = 0  # in all bursts
    current: int = 0  # in the burst going on, or else the last one

    @property
    def mean_frames(self) -> float | None:
        """Frames per burst on average (None before the first burst)."""
        return round(self.frames / self.started, 2) if self.started else None


class CameraProcessor:
    """Feeds one camera to its accelerator and keeps the result for the camera's entities."""

    def __init__(
        self,
        hass: HomeAssistant,
        accelerator: Accelerator,
        subentry_id: str,
        title: str,
        settings: CameraSettings,
    ) -> None:
        """Prepare the pipeline; nothing runs until async_start."""
        self.hass = hass
        self.accelerator = accelerator
        self.subentry_id = subentry_id
        self.title = title
        self.settings = settings
        self.tracker = ObjectTracker(
            confirm_frames=settings.confirm_frames,
            confirm_window=settings.confirm_window,
            off_delay=settings.off_delay,
        )
        self.state = CameraState(task=accelerator.model.task)
        self.image_entity_id: str | None = None
        self._device_id: str | None = None
        self.camera_ok = True
        self._engine_error: str | None = None
        # Frames being fetched or run: a timer tick or motion finding one skips its own, so a
        # slow camera never has two fetches in flight and late ticks do not queue up.
        self._in_flight = 0
        self._fetching = asyncio.Lock()
        self._timer: CALLBACK_TYPE | None = None
        self.bursts = BurstCounts()
        self._motion = (
            MotionWatch(
                hass,
                settings.motion_sources,
                settings.hold_time,
                self._async_motion_started,
                self._async_motion_ended,
            )
            if settings.motion_sources
            else None
        )
        self._listeners: list[Callable[[], None]] = []
        self._unsubs: list[CALLBACK_TYPE] = []
        self._expiry: CALLBACK_TYPE | None = None
        self._retry: CALLBACK_TYPE | None = None
        self._annotated: tuple[datetime | None, bytes] | None = None

    @property
    def source_id(self) -> str:
        """The key frames of this camera are coalesced under."""
        return f"{self.subentry_id}:{self.settings.camera_entity}"

    @property
    def device_id(self) -> str | None:
        """The camera's device in the registry (what device triggers match on)."""
        if self._device_id is None:
            registry = dr.async_get(self.hass)
            for device in dr.async_entries_for_config_entry(registry, self.accelerator.entry_id):
                if (DOMAIN, self.subentry_id) in device.identifiers:
                    self._device_id = device.id
        return self._device_id

    @property
    def available(self) -> bool:
        """Whether the camera answers and the accelerator has a backend."""
        return self.camera_ok and self.accelerator.backend is not None

    @callback
    def async_start(self) -> None:
        """Start the scan timer (none when the interval is 0: scans only on demand or motion)."""
        self._set_timer(self.settings.scan_interval)
        self._unsubs.append(self.accelerator.async_add_listener(self._async_notify))
        if self._motion is not None:
            self._motion.async_start()

    @callback
    def async_stop(self) -> None:
        """Stop timers and listeners."""
        if self._motion is not None:
            self._motion.async_stop()
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        for timer in (self._expiry, self._retry, self._timer):
            if timer is not None:
                timer()
        self._expiry = self._retry = self._timer = None

    def _set_timer(self, interval: float) -> None:
        """Scan every `interval` seconds from now on (0: not on a timer)."""
        if self._timer is not None:
            self._timer()
            self._timer = None
        if interval > 0:
            self._timer = async_track_time_interval(
                self.hass,
                self._async_tick,
                timedelta(seconds=interval),
                name=f"coral_vision scan {self.settings.camera_entity}",
                cancel_on_shutdown=True,
            )

    @callback
    def _async_motion_started(self) -> None:
        """Scan at the burst interval, the first frame now rather than at the first tick."""
        self.bursts.started += 1
        self.bursts.current = 0
        self._set_timer(self.settings.burst_interval)
        self.state = replace(self.state, bursting=True)
        self._async_notify()
        if not self._in_flight:
            # Started eagerly: the camera is asked for its frame within this callback.
            self.hass.async_create_background_task(
                self.async_process(), name=f"coral_vision motion {self.settings.camera_entity}"
            )

    @callback
    def _async_motion_ended(self) -> None:
        """The hold time passed: back to the normal interval."""
        self._set_timer(self.settings.scan_interval)
        self.state = replace(self.state, bursting=False)
        self._async_notify()
        if not self.camera_ok:
            self._schedule_retry()

    @callback
    def async_add_listener(self, update: Callable[[], None]) -> Callable[[], None]:
        """Call `update` after every processed frame; return the remover."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    async def _async_tick(self, _now: datetime) -> None:
        """Process a frame on the timer, unless the last one is still running."""
        if not self._in_flight:
            await self.async_process()

    async def async_process(self) -> None:
        """Fetch a frame, run it and publish what it shows."""
        self._in_flight += 1
        try:
            # An on-demand scan during a slow fetch waits for it rather than fetching beside it.
            async with self._fetching:
                image = await self._async_fetch()
            if image is None:
                return
            try:
                result = await self.accelerator.run(self.source_id, image)
            except (FrameSupersededError, ExecutorClosedError):
                return
            except DelegateError as err:
                # The Edge TPU was lost mid-frame: the accelerator reports its fallback.
                LOGGER.debug("Frame of %s lost with its backend: %s", self.title, err)
                return
            except CoralVisionError as err:
                self._set_engine_error(str(err))
                return
            self._set_engine_error(None)
            await self._async_publish(image, result)
        finally:
            self._in_flight -= 1

    async def _async_fetch(self) -> bytes | None:
        """The camera's current frame; None (and unavailable, logged once) when it fails."""
        # A dependency, loaded before this integration: importing it here (a lookup) keeps
        # importing the package free of the numpy the camera component brings.
        from homeassistant.components import camera  # noqa: PLC0415

        try:
            image = await camera.async_get_image(
                self.hass, self.settings.camera_entity, timeout=CAMERA_TIMEOUT
            )
        except Exception as err:  # a camera integration may raise anything: the camera is down
            if self.camera_ok:
                # Info, once: a camera going away is no fault of Coral Vision's (the rule of
                # Home Assistant's quality scale); "available again" pairs with it.
                LOGGER.info(
                    "Camera %s is unavailable: %s",
                    self.settings.camera_entity,
                    err if isinstance(err, HomeAssistantError) else f"{type(err).__name__}: {err}",
                )
                self.camera_ok = False
                self._async_notify()
            self._schedule_retry()
            return None
        if not self.camera_ok:
            LOGGER.info("Camera %s is available again", self.settings.camera_entity)
            self.camera_ok = True
        return image.content

    def _schedule_retry(self) -> None:
        """Try a lost camera again later: unavailable entities get no `image_processing.scan`."""
        if self._timer is not None or self._retry is not None:
            return
        self._retry = async_call_later(self.hass, CAMERA_RETRY, self._async_retry)

    async def _async_retry(self, _now: datetime) -> None:
        """Fetch a frame from the lost camera again."""
        self._retry = None
        if not self._in_flight:
            await self.async_process()

    def _set_engine_error(self, error: str | None) -> None:
        """Log an engine error once when it starts and once when it ends."""
        if error is not None and self._engine_error is None:
            LOGGER.warning("Frames of %s fail: %s", self.settings.camera_entity, error)
        elif error is None and self._engine_error is not None:
            LOGGER.info("Frames of %s run again", self.settings.camera_entity)
        self._engine_error = error

    def matching(self, result: FrameResult) -> tuple[Detection, ...]:
        """The frame's objects that pass this camera's filters (classes as whole-frame objects)."""
        if result.task == "detection":
            return self.settings.object_filter.apply(result.detections, result.image_size)
        width, height = result.image_size
        frame = BBox(0, 0, width, height)
        return tuple(
            Detection(c.label, c.id, c.score, frame)
            for c in result.classes
            if self.settings.object_filter.score_ok(c.label, c.score)
        )

    async def _async_publish(self, image: bytes, result: FrameResult) -> None:
        """Confirm, fire events, save snapshots, and tell the entities."""
        now = dt_util.utcnow()
        if self.state.bursting:
            self.bursts.frames += 1
            self.bursts.current += 1
        update = self.tracker.update(self.matching(result), self.hass.loop.time())
        state = replace(
            self.state,
            task=result.task,
            matches=update.confirmed,
            active_labels=update.active_labels,
            frame_time=now,
            process_time_ms=round(result.preprocess_ms + result.inference_ms, 1),
            top_class=result.classes[0].label if result.classes else None,
            new=update.new,
        )
        if update.confirmed:
            state = replace(state, last_detection=now)
            if self._picture_is_news(update.confirmed, now) or update.new:
                state = replace(
                    state,
                    detection_frame=image,
                    detection_matches=update.confirmed,
                    annotated_time=now,
                )
        self.state = state
        if update.new and self.settings.save_snapshots:
            jpeg = await self.async_annotated()
            if jpeg is not None:
                path = await self.hass.async_add_executor_job(self._save_snapshot, jpeg, now)
                self.state = state = replace(state, snapshot=str(path))
        for detection in update.new:
            self._fire_detected(detection, result, now, state.snapshot)
        for label in update.cleared_labels:
            self._fire_cleared(label)
        self._schedule_expiry()
        self._async_notify()

    def _picture_is_news(self, confirmed: Sequence[Detection], now: datetime) -> bool:
        """Whether the last-detection image should move to this frame: other objects, or stale."""
        shown = self.state
        if Counter(d.label for d in confirmed) != Counter(d.label for d in shown.detection_matches):
            return True
        return shown.annotated_time is None or now - shown.annotated_time >= IMAGE_REFRESH

    async def async_annotated(self) -> bytes | None:
        """The last frame with matches as a JPEG with its boxes drawn, drawn once per frame."""
        state = self.state
        if state.detection_frame is None:
            return None
        if self._annotated is None or self._annotated[0] != state.annotated_time:
            jpeg = await self.hass.async_add_executor_job(
                _annotate, state.detection_frame, state.detection_matches
            )
            self._annotated = (state.annotated_time, jpeg)
        return self._annotated[1]

    def _fire_detected(
        self, detection: Detection, result: FrameResult, now: datetime, snapshot: str | None
    ) -> None:
        """Fire coral_vision_detected for an object that newly passed the filters."""
        width, height = result.image_size
        self.hass.bus.async_fire(
            EVENT_DETECTED,
            {
                "entity_id": self.image_entity_id,
                "device_id": self.device_id,
                "camera_entity": self.settings.camera_entity,
                "label": detection.label,
                "score": round(detection.score, 3),
                "box": detection.box.as_list(),
                "area": round(detection.box.area / float(width * height or 1), 4),
                "frame_time": now.isoformat(),
                "snapshot": snapshot,
            },
        )

    def _fire_cleared(self, label: str) -> None:
        """Fire coral_vision_cleared when a label is no longer seen after its off-delay."""
        self.hass.bus.async_fire(
            EVENT_CLEARED,
            {
                "entity_id": self.image_entity_id,
                "device_id": self.device_id,
                "camera_entity": self.settings.camera_entity,
                "label": label,
            },
        )

    def _schedule_expiry(self) -> None:
        """Re-check active labels when the earliest off-delay runs out."""
        if self._expiry is not None:
            self._expiry()
            self._expiry = None
        due = self.tracker.next_expiry()
        if due is None:
            return
        self._expiry = async_call_later(
            self.hass, max(0.0, due - self.hass.loop.time()) + 0.05, self._async_expire
        )

    @callback
    def _async_expire(self, _now: datetime) -> None:
        """Clear labels whose off-delay ran out between frames."""
        self._expiry = None
        cleared = self.tracker.expire(self.hass.loop.time())
        if cleared:
            self.state = replace(
                self.state, active_labels=self.tracker.active_labels(self.hass.loop.time())
            )
            for label in cleared:
                self._fire_cleared(label)
            self._async_notify()
        self._schedule_expiry()

    def _save_snapshot(self, jpeg: bytes, now: datetime) -> Path:
        """Write an annotated frame under <config>/coral_vision/snapshots/<camera>/, keep the newest."""
        folder = Path(
            self.hass.config.path(
                DOMAIN, "snapshots", self.settings.camera_entity.replace(".", "_")
            )
        )
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{now.strftime('%Y%m%d-%H%M%S-%f')}.jpg"
        path.write_bytes(jpeg)
        for old in sorted(folder.glob("*.jpg"))[:-SNAPSHOTS_KEPT]:
            old.unlink(missing_ok=True)
        return path

    @callback
    def _async_notify(self) -> None:
        """Tell the entities to write their state."""
        for update in list(self._listeners):
            update()


def _annotate(frame: bytes, detections: Sequence[Detection]) -> bytes:
    """Draw the boxes on a frame (in a worker: the drawing brings Pillow and numpy with it)."""
    from .engine.vision.annotate import annotate  # noqa: PLC0415

    return annotate(frame, detections)
