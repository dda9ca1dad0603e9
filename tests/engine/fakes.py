"""Stand-ins for what this machine cannot have: libedgetpu, an Edge TPU, and its sysfs entries.

``FakeEdgeTpu`` plays libedgetpu plus one accelerator. ``fake.runtime()`` returns a real
``Runtime`` whose ``load_delegate`` hands out a ``FakeDelegate`` (or raises the configured
``load_error``, e.g. ``OSError`` for "library missing" or ``ValueError`` for "no device") and
whose ``interpreter_factory``, when given that delegate, builds a REAL CPU interpreter: of the
model itself, or of ``cpu_twin`` when the model is compiled for the Edge TPU (the CPU cannot run
``edgetpu-custom-op``). A twin quantized otherwise than the compiled model (the YOLO test files
come from different compiles) has its inputs and outputs requantized so callers see the compiled
model's. Without the fake delegate it builds the plain real interpreter.

The interpreters it builds with the delegate run real inference, but the test can:

- ``fake.unplug()``: every later ``invoke()`` raises ``RuntimeError`` like libedgetpu does when
  the USB accelerator disappears mid-stream (``fake.replug()`` undoes it);
- ``fake.hang()``: every later ``invoke()`` blocks until ``fake.release()`` (or until
  ``hang_timeout`` seconds pass, then raises ``RuntimeError`` so a buggy test cannot hang
  forever); ``fake.blocked`` is set once an invoke is stuck, so a test can wait for that;
- ``fake.reenumerate()``: the accelerator comes back as a new device instance: interpreters
  built from then on run, while invokes stuck on older ones stay stuck until ``release()``;
- ``fake.block_loads()``: every later ``load_delegate()`` blocks (``fake.loading`` is set) until
  ``fake.unblock_loads()`` (or ``hang_timeout``, then it returns as if it had worked).

Counters (``load_calls``, ``invokes``, ``interpreters``, ``stuck``: invokes blocked now) let tests
assert what happened.

``make_usb_tpu`` and ``make_pci_tpu`` write fake sysfs/dev trees for ``list_edge_tpus``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from custom_components.coral_vision.engine.errors import ModelError
from custom_components.coral_vision.engine.inference.devices import EdgeTpu
from custom_components.coral_vision.engine.models.model import describe_model
from custom_components.coral_vision.engine.runtime import Runtime, load_runtime

USB_BEFORE_FIRMWARE = ("1a6e", "089a")
USB_AFTER_FIRMWARE = ("18d1", "9302")


class FakeDelegate:
    """What load_delegate returns: remembers the library and options it was loaded with."""

    def __init__(self, library: str, options: dict[str, Any]) -> None:
        self.library = library
        self.options = options


class FakeEdgeTpu:
    """libedgetpu and one Edge TPU, backed by real CPU interpreters (see the module docstring)."""

    def __init__(
        self,
        *,
        cpu_twin: bytes | None = None,
        load_error: BaseException | None = None,
        hang_timeout: float = 30.0,
    ) -> None:
        self.cpu_twin = cpu_twin
        self.load_error = load_error
        self.hang_timeout = hang_timeout
        self.load_calls: list[tuple[str, dict[str, Any]]] = []
        self.invokes = 0
        self.interpreters = 0
        self.stuck = 0
        self.invoke_error: BaseException | None = None
        self.blocked = threading.Event()
        self.loading = threading.Event()
        # Each device instance has its own gate: interpreters wait on the one they were built on.
        self._running = threading.Event()
        self._running.set()
        self._gates = [self._running]
        self._loads = threading.Event()
        self._loads.set()
        self._lock = threading.Lock()

    def runtime(self) -> Runtime:
        """A Runtime wired to this fake, on top of the real installed interpreter."""
        real = load_runtime()
        return Runtime(
            name=real.name,
            interpreter_factory=lambda **kwargs: self._interpreter(real, **kwargs),
            load_delegate=self._load_delegate,
        )

    def unplug(self, error: BaseException | None = None) -> None:
        """Make every later invoke fail like a TPU pulled out of its port."""
        self.invoke_error = error or RuntimeError(
            "Failed to invoke the Edge TPU: USB transfer error 2 [LibUsbDataOutCallback]"
        )

    def replug(self) -> None:
        """Undo unplug()."""
        self.invoke_error = None

    def hang(self) -> None:
        """Make every later invoke block until release()."""
        self.blocked.clear()
        self._running.clear()

    def release(self) -> None:
        """Let blocked and later invokes run again."""
        for gate in self._gates:
            gate.set()

    def reenumerate(self) -> None:
        """Become a new device instance: new interpreters run, stuck invokes stay stuck."""
        self._running = threading.Event()
        self._running.set()
        self._gates.append(self._running)

    def block_loads(self) -> None:
        """Make every later load_delegate() block until unblock_loads()."""
        self.loading.clear()
        self._loads.clear()

    def unblock_loads(self) -> None:
        """Let blocked and later load_delegate() calls return."""
        self._loads.set()

    def _load_delegate(self, library: str, options: dict[str, Any] | None = None) -> FakeDelegate:
        self.load_calls.append((library, dict(options or {})))
        if not self._loads.is_set():
            self.loading.set()
            self._loads.wait(self.hang_timeout)
        if self.load_error is not None:
            raise self.load_error
        return FakeDelegate(library, dict(options or {}))

    def _interpreter(
        self,
        real: Runtime,
        *,
        model_content: bytes,
        experimental_delegates: list[Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        delegates = list(experimental_delegates or [])
        on_tpu = any(isinstance(d, FakeDelegate) for d in delegates)
        others = [d for d in delegates if not isinstance(d, FakeDelegate)]
        indices: dict[int, int] = {}
        requantize: dict[int, tuple[Any, Any]] = {}
        if on_tpu and _compiled(model_content):
            if self.cpu_twin is None:
                raise ValueError("FakeEdgeTpu needs cpu_twin to run an *_edgetpu.tflite model")
            # The twin numbers its tensors differently: map the compiled model's input and
            # output indices (what callers use) onto the twin's, position by position.
            compiled = real.interpreter_factory(model_content=model_content)
            twin = real.interpreter_factory(model_content=self.cpu_twin)
            for getter in ("get_input_details", "get_output_details"):
                pairs = zip(getattr(compiled, getter)(), getattr(twin, getter)(), strict=True)
                for ours, theirs in pairs:
                    indices[ours["index"]] = theirs["index"]
                    if (ours["quantization"], ours["dtype"]) != (
                        theirs["quantization"],
                        theirs["dtype"],
                    ):
                        requantize[ours["index"]] = (ours, theirs)
            model_content = self.cpu_twin
        interpreter = real.interpreter_factory(
            model_content=model_content, experimental_delegates=others or None, **kwargs
        )
        with self._lock:
            self.interpreters += 1
        if on_tpu:
            return _TpuInterpreter(interpreter, self, indices, requantize)
        return interpreter

    def _invoke(self, interpreter: Any, gate: threading.Event) -> None:
        with self._lock:
            self.invokes += 1
        if not gate.is_set():
            with self._lock:
                self.stuck += 1
            self.blocked.set()
            try:
                if not gate.wait(self.hang_timeout):
                    raise RuntimeError("fake Edge TPU: hang_timeout passed without release()")
            finally:
                with self._lock:
                    self.stuck -= 1
        if self.invoke_error is not None:
            raise self.invoke_error
        interpreter.invoke()


class _TpuInterpreter:
    """A real interpreter whose invoke() goes through the fake TPU's switches."""

    def __init__(
        self,
        interpreter: Any,
        tpu: FakeEdgeTpu,
        indices: dict[int, int],
        requantize: dict[int, tuple[Any, Any]] | None = None,
    ) -> None:
        self._interpreter = interpreter
        self._tpu = tpu
        self._indices = indices
        self._requantize = requantize or {}
        self._gate = tpu._running

    def invoke(self) -> None:
        self._tpu._invoke(self._interpreter, self._gate)

    def set_tensor(self, index: int, value: Any) -> None:
        if index in self._requantize:
            ours, theirs = self._requantize[index]
            value = _requantized(value, ours, theirs)
        self._interpreter.set_tensor(self._indices.get(index, index), value)

    def get_tensor(self, index: int) -> Any:
        value = self._interpreter.get_tensor(self._indices.get(index, index))
        if index in self._requantize:
            ours, theirs = self._requantize[index]
            value = _requantized(value, theirs, ours)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._interpreter, name)


def _requantized(value: Any, source: dict[str, Any], target: dict[str, Any]) -> Any:
    """A tensor quantized as `source` describes, quantized as `target` describes."""
    scale, zero_point = source["quantization"]
    real = (np.asarray(value, np.float64) - zero_point) * scale if scale else value
    scale, zero_point = target["quantization"]
    dtype = np.dtype(target["dtype"])
    if not scale:
        return np.asarray(real, dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(real / scale + zero_point), info.min, info.max).astype(dtype)


def make_usb_tpu(
    sys_root: Path,
    name: str,
    ids: tuple[str, str] = USB_AFTER_FIRMWARE,
    address: tuple[int, int] | None = None,
) -> Path:
    """Write /sys/bus/usb/devices/<name>/idVendor and idProduct (and busnum, devnum) under sys_root."""
    entry = sys_root / "bus" / "usb" / "devices" / name
    entry.mkdir(parents=True, exist_ok=True)
    (entry / "idVendor").write_text(f"{ids[0]}\n")
    (entry / "idProduct").write_text(f"{ids[1]}\n")
    if address is not None:
        (entry / "busnum").write_text(f"{address[0]}\n")
        (entry / "devnum").write_text(f"{address[1]}\n")
    return entry


def make_pci_tpu(
    sys_root: Path, dev_root: Path, number: int, millidegrees: str | None = None
) -> Path:
    """Create /dev/apex_<number> (and its sysfs temp file when millidegrees is given)."""
    dev_root.mkdir(parents=True, exist_ok=True)
    node = dev_root / f"apex_{number}"
    node.touch()
    if millidegrees is not None:
        folder = sys_root / "class" / "apex" / f"apex_{number}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "temp").write_text(f"{millidegrees}\n")
    return node


def _compiled(content: bytes) -> bool:
    """Whether a model was compiled for the Edge TPU (False when it is not readable)."""
    try:
        return describe_model(content).edgetpu
    except ModelError:
        return False


class SleepingTpu:
    """An Edge TPU whose invoke only sleeps `invoke_s` (releasing the GIL) and returns zeros.

    For pool tests and benchmarks: no real interpreter runs, so the CPU stays free and the
    figures measure the pool. Classification models only (one output). ``unplug()`` makes
    every later invoke fail like a pulled TPU; ``replug()`` undoes it.
    """

    def __init__(self, device: str, invoke_s: float = 0.01) -> None:
        self.tpu = EdgeTpu("usb", int(device.rsplit(":", 1)[-1]), f"/fake/{device}", device)
        self.invoke_s = invoke_s
        self.invokes = 0
        self.invoke_error: BaseException | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.blocked = threading.Event()
        self._lock = threading.Lock()

    def runtime(self) -> Runtime:
        """A Runtime whose delegate always loads: its interpreters sleep, the CPU's are real."""
        real = load_runtime()

        def factory(**kwargs: Any) -> Any:
            if any(isinstance(d, FakeDelegate) for d in kwargs.get("experimental_delegates") or []):
                return _SleepingInterpreter(self, **kwargs)
            return real.interpreter_factory(**kwargs)

        return Runtime(
            name="sleeping-tpu",
            interpreter_factory=factory,
            load_delegate=lambda library, options=None: FakeDelegate(library, dict(options or {})),
        )

    def hold(self) -> None:
        """Make later invokes wait (up to 30 s) until release(); ``blocked`` is set once one does."""
        self.blocked.clear()
        self.gate.clear()

    def release(self) -> None:
        """Let held invokes finish."""
        self.gate.set()

    def list_tpus(self) -> list[EdgeTpu]:
        """What list_edge_tpus would find: this TPU while it is plugged in."""
        return [] if self.invoke_error is not None else [self.tpu]

    def unplug(self) -> None:
        """Make every later invoke fail like a TPU pulled out of its port."""
        self.invoke_error = RuntimeError("Failed to invoke the Edge TPU: USB transfer error 2")

    def replug(self) -> None:
        """Undo unplug()."""
        self.invoke_error = None

    def invoke(self) -> None:
        if not self.gate.is_set():
            self.blocked.set()
            self.gate.wait(30.0)
        if self.invoke_error is not None:
            raise self.invoke_error
        time.sleep(self.invoke_s)
        with self._lock:
            self.invokes += 1


class _SleepingInterpreter:
    """The part of the interpreter API a Backend uses, with a sleeping invoke."""

    def __init__(
        self,
        tpu: SleepingTpu,
        *,
        model_content: bytes,
        experimental_delegates: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        description = describe_model(model_content)
        self._tpu = tpu
        classes = description.num_classes or 1
        self._outputs = {o.index: np.zeros((1, classes), o.dtype) for o in description.outputs}

    def allocate_tensors(self) -> None:
        pass

    def set_tensor(self, index: int, value: Any) -> None:
        pass

    def invoke(self) -> None:
        self._tpu.invoke()

    def get_tensor(self, index: int) -> Any:
        return self._outputs[index].copy()
