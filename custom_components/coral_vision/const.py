"""Constants of the Coral Vision integration."""

from __future__ import annotations

import logging
from typing import Final

from .engine.camera import filters

DOMAIN: Final = "coral_vision"
LOGGER = logging.getLogger(__package__)

# The TFLite runtime, installed at setup through Home Assistant's own requirements mechanism so
# that a platform without wheels (HA OS and Container are Alpine/musl) still loads the integration.
RUNTIME_REQUIREMENT: Final = "ai-edge-litert==2.3.0"

EVENT_DETECTED: Final = "coral_vision_detected"
EVENT_CLEARED: Final = "coral_vision_cleared"

CONF_DEVICE: Final = "device"
CONF_MODEL: Final = "model"
CONF_MODEL_PATH: Final = "model_path"
CONF_LABELS_PATH: Final = "labels_path"
CONF_CAMERA: Final = "camera_entity"
CONF_LABELS: Final = "labels"
CONF_MIN_SCORE: Final = "min_score"
CONF_SCORES: Final = "scores"
CONF_MIN_AREA: Final = "min_area"
CONF_MAX_AREA: Final = "max_area"
CONF_REGION: Final = "region"
CONF_SCAN_INTERVAL: Final = "scan_interval"
CONF_CONFIRM_FRAMES: Final = "confirm_frames"
CONF_CONFIRM_WINDOW: Final = "confirm_window"
CONF_OFF_DELAY: Final = "off_delay"
CONF_SAVE_SNAPSHOTS: Final = "save_snapshots"
CONF_MOTION_SOURCES: Final = "motion_sources"
CONF_BURST_INTERVAL: Final = "burst_interval"
CONF_HOLD_TIME: Final = "hold_time"

# A new camera's minimum score for each label (measured: see engine/camera/filters.py).
DEFAULT_MIN_SCORE: Final = filters.DEFAULT_MIN_SCORE
# A new camera's minimum box area, in percent of the frame: boxes smaller than 0.1 % are 5 x 18
# pixels of a 300 x 300 model input, below what SSD models resolve; on the shared photos more than
# a third of those scoring DEFAULT_MIN_SCORE or more are false (benchmarks/score_distribution.py).
DEFAULT_MIN_AREA: Final = 0.1

# The shortest scan interval a camera may have (0 scans only on demand): a camera polled faster
# spends its time fetching frames the executor would coalesce away anyway.
MIN_SCAN_INTERVAL: Final = 0.5
# While motion lasts a camera is scanned this often, and never faster than MIN_SCAN_INTERVAL: a
# stream-only camera whose stills ffmpeg makes takes ~0.5 s of CPU per 1080p frame, and a
# stream's still changes only at its keyframes (benchmarks/camera_fetch.py).
DEFAULT_BURST_INTERVAL: Final = 0.5
# How long bursts go on after the last motion ended (an event entity's motion is only this).
DEFAULT_HOLD_TIME: Final = 10.0

DEVICE_CPU: Final = "cpu"
MODEL_CUSTOM: Final = "custom"
SUBENTRY_CAMERA: Final = "camera"
CONF_MIRROR: Final = "mirror"
