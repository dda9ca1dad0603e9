"""Prometheus metrics at /metrics, written by hand in the text exposition format (version 0.0.4).

Per model and device: frames, errors by kind, fallbacks, queue depth, inference p50/p95 and a
latency histogram of the server's engine calls (queue, decode and inference); per device its
temperature.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..inference.devices import EdgeTpu
from .host import Loaded

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: an Edge TPU frame takes a few milliseconds, a CPU one tens, a queued one more.
BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

type Labels = tuple[tuple[str, str], ...]


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: int = 0
    sum: float = 0.0


class Recorder:
    """Latencies and failures of engine calls, by model and device; safe from any thread."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self._latency: dict[tuple[str, str], _Histogram] = {}
        self._errors: dict[tuple[str, str], int] = {}

    def record(self, loaded: Loaded, device: str, latency_ms: float | None) -> None:
        """One engine call ended: after `latency_ms`, or failed (None)."""
        key = (loaded.id, device)
        with self._lock:
            if latency_ms is None:
                self._errors[key] = self._errors.get(key, 0) + 1
                return
            histogram = self._latency.setdefault(key, _Histogram())
            seconds = latency_ms / 1000
            index = bisect_left(BUCKETS, seconds)
            if index < len(BUCKETS):
                histogram.counts[index] += 1
            histogram.total += 1
            histogram.sum += seconds

    def snapshot(self) -> tuple[dict[tuple[str, str], _Histogram], dict[tuple[str, str], int]]:
        """Copies of the histograms and error counts."""
        with self._lock:
            latency = {
                k: _Histogram(list(h.counts), h.total, h.sum) for k, h in self._latency.items()
            }
            return latency, dict(self._errors)


def render(
    models: Sequence[Loaded],
    recorder: Recorder,
    temperatures: Mapping[str, float | None],
) -> str:
    """Every metric as exposition text."""
    out = _Writer()
    executors = [
        (loaded, name.partition("#")[0], stats)
        for loaded in models
        for name, stats in loaded.dispatcher.pool_stats().executors
    ]

    def per_executor(
        metric: str, kind: str, help_: str, values: Iterable[tuple[Loaded, str, float]]
    ) -> None:
        out.family(metric, kind, help_)
        for loaded, device, value in values:
            out.sample(metric, (("model", loaded.id), ("device", device)), value)

    per_executor(
        "coral_vision_frames_total",
        "counter",
        "Frames that produced a result.",
        ((m, d, s.frames_done) for m, d, s in executors),
    )
    out.family("coral_vision_frame_errors_total", "counter", "Frames that did not, by kind.")
    for loaded, device, stats in executors:
        for kind, count in (
            ("failed", stats.frames_failed),
            ("dropped", stats.frames_dropped),
            ("rejected", stats.frames_rejected),
            ("timed_out", stats.frames_timed_out),
        ):
            labels = (("model", loaded.id), ("device", device), ("kind", kind))
            out.sample("coral_vision_frame_errors_total", labels, count)
    per_executor(
        "coral_vision_backend_changes_total",
        "counter",
        "Times the executor opened another backend (fallback to the CPU, recovery, swap).",
        ((m, d, s.backend_changes) for m, d, s in executors),
    )
    per_executor(
        "coral_vision_fallback",
        "gauge",
        "1 while a model asked to run on an Edge TPU runs on the CPU instead.",
        (
            (m, d, int(s.backend is not None and s.backend.fallback_reason is not None))
            for m, d, s in executors
        ),
    )
    per_executor(
        "coral_vision_queue_depth",
        "gauge",
        "Frames accepted and not yet running.",
        ((m, d, s.queue_depth) for m, d, s in executors),
    )
    out.family("coral_vision_inference_ms", "gauge", "Inference time over the recent frames.")
    for loaded, device, stats in executors:
        for quantile, value in (("0.5", stats.inference_p50_ms), ("0.95", stats.inference_p95_ms)):
            if value is not None:
                labels = (("model", loaded.id), ("device", device), ("quantile", quantile))
                out.sample("coral_vision_inference_ms", labels, value)
    latency, errors = recorder.snapshot()
    out.family(
        "coral_vision_request_errors_total", "counter", "Engine calls that failed, any reason."
    )
    for (model, device), count in sorted(errors.items()):
        out.sample(
            "coral_vision_request_errors_total", (("model", model), ("device", device)), count
        )
    metric = "coral_vision_request_latency_seconds"
    out.family(metric, "histogram", "Engine call time: queue, decode and inference.")
    for (model, device), histogram in sorted(latency.items()):
        pair: Labels = (("model", model), ("device", device))
        cumulative = 0
        for bound, count in zip(BUCKETS, histogram.counts, strict=True):
            cumulative += count
            out.sample(f"{metric}_bucket", (*pair, ("le", _number(bound))), cumulative)
        out.sample(f"{metric}_bucket", (*pair, ("le", "+Inf")), histogram.total)
        out.sample(f"{metric}_sum", pair, histogram.sum)
        out.sample(f"{metric}_count", pair, histogram.total)
    out.family("coral_vision_temperature_celsius", "gauge", "Edge TPU temperature.")
    for device, celsius in sorted(temperatures.items()):
        if celsius is not None:
            out.sample("coral_vision_temperature_celsius", (("device", device),), celsius)
    return out.text()


def device_name(tpu: EdgeTpu | None) -> str:
    """A device as metrics and /v1/status name it: its device string, or "cpu"."""
    return tpu.device if tpu is not None else "cpu"


class _Writer:
    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_: str) -> None:
        self._lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, labels: Labels, value: float) -> None:
        pairs = ",".join(f'{key}="{_escape(text)}"' for key, text in labels)
        self._lines.append(f"{name}{{{pairs}}} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
