"""Prometheus metrics at /metrics, exposed with prometheus-client in the text format 0.0.4.

Per model and device: frames, errors by kind, fallbacks, queue depth, inference p50/p95 and a
latency histogram of the server's engine calls (queue, decode and inference); per device its
temperature. Each application has its own registry (tests build many in one process); the
executors' counters are read at scrape time, the engine calls are recorded as they end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from ..inference.devices import EdgeTpu
from ..inference.stats import ExecutorStats
from .host import Loaded

# What generate_latest writes (the library's own servers send it unless asked for 1.0.0).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Seconds: an Edge TPU frame takes a few milliseconds, a CPU one tens, a queued one more.
BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_PAIR = ("model", "device")
type _Executor = tuple[str, str, ExecutorStats]


class Recorder:
    """Latencies and failures of engine calls, by model and device; safe from any thread."""

    def __init__(self) -> None:
        """Start empty, in a registry of its own."""
        self.registry = CollectorRegistry()
        self._errors = Counter(
            "coral_vision_request_errors_total",
            "Engine calls that failed, any reason.",
            _PAIR,
            registry=self.registry,
        )
        self._latency = Histogram(
            "coral_vision_request_latency_seconds",
            "Engine call time: queue, decode and inference.",
            _PAIR,
            registry=self.registry,
            buckets=BUCKETS,
        )

    def record(self, loaded: Loaded, device: str, latency_ms: float | None) -> None:
        """One engine call ended: after `latency_ms`, or failed (None)."""
        if latency_ms is None:
            self._errors.labels(loaded.id, device).inc()
        else:
            self._latency.labels(loaded.id, device).observe(latency_ms / 1000)


def render(
    models: Sequence[Loaded],
    recorder: Recorder,
    temperatures: Mapping[str, float | None],
) -> bytes:
    """Every metric as exposition text."""
    return generate_latest(_Scrape(models, recorder, temperatures))


def device_name(tpu: EdgeTpu | None) -> str:
    """A device as metrics and /v1/status name it: its device string, or "cpu"."""
    return tpu.device if tpu is not None else "cpu"


class _Scrape(Collector):
    """One scrape: the executors' counters and the temperatures now, then the recorder's."""

    def __init__(
        self,
        models: Sequence[Loaded],
        recorder: Recorder,
        temperatures: Mapping[str, float | None],
    ) -> None:
        self._executors: list[_Executor] = [
            (loaded.id, name.partition("#")[0], stats)
            for loaded in models
            for name, stats in loaded.dispatcher.pool_stats().executors
        ]
        self._recorder = recorder
        self._temperatures = temperatures

    def collect(self) -> Iterator[Metric]:
        """The metric families in exposition order."""
        executors = self._executors
        yield _per_executor(
            CounterMetricFamily(
                "coral_vision_frames_total", "Frames that produced a result.", labels=_PAIR
            ),
            ((m, d, s.frames_done) for m, d, s in executors),
        )
        yield _frame_errors(executors)
        yield _per_executor(
            CounterMetricFamily(
                "coral_vision_backend_changes_total",
                "Times the executor opened another backend (fallback to the CPU, recovery, swap).",
                labels=_PAIR,
            ),
            ((m, d, s.backend_changes) for m, d, s in executors),
        )
        yield _per_executor(
            GaugeMetricFamily(
                "coral_vision_fallback",
                "1 while a model asked to run on an Edge TPU runs on the CPU instead.",
                labels=_PAIR,
            ),
            (
                (m, d, int(s.backend is not None and s.backend.fallback_reason is not None))
                for m, d, s in executors
            ),
        )
        yield _per_executor(
            GaugeMetricFamily(
                "coral_vision_queue_depth", "Frames accepted and not yet running.", labels=_PAIR
            ),
            ((m, d, s.queue_depth) for m, d, s in executors),
        )
        yield _inference_ms(executors)
        yield from self._recorder.registry.collect()
        temperature = GaugeMetricFamily(
            "coral_vision_temperature_celsius", "Edge TPU temperature.", labels=("device",)
        )
        for device, celsius in sorted(self._temperatures.items()):
            if celsius is not None:
                temperature.add_metric((device,), celsius)
        yield temperature


def _per_executor[F: CounterMetricFamily | GaugeMetricFamily](
    family: F, values: Iterable[tuple[str, str, float]]
) -> F:
    for model, device, value in values:
        family.add_metric((model, device), value)
    return family


def _frame_errors(executors: Sequence[_Executor]) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "coral_vision_frame_errors_total",
        "Frames that did not, by kind.",
        labels=(*_PAIR, "kind"),
    )
    for model, device, stats in executors:
        for kind, count in (
            ("failed", stats.frames_failed),
            ("dropped", stats.frames_dropped),
            ("rejected", stats.frames_rejected),
            ("timed_out", stats.frames_timed_out),
        ):
            family.add_metric((model, device, kind), count)
    return family


def _inference_ms(executors: Sequence[_Executor]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "coral_vision_inference_ms",
        "Inference time over the recent frames.",
        labels=(*_PAIR, "quantile"),
    )
    for model, device, stats in executors:
        for quantile, value in (("0.5", stats.inference_p50_ms), ("0.95", stats.inference_p95_ms)):
            if value is not None:
                family.add_metric((model, device, quantile), value)
    return family
