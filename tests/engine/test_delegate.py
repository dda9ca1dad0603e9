"""Opening backends: Edge TPU through a fake libedgetpu, CPU fallback with reasons."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from custom_components.coral_vision.engine.errors import (
    DelegateError,
    EdgeTpuModelOnCpuError,
    InferenceError,
    ModelError,
)
from custom_components.coral_vision.engine.inference.delegate import (
    Backend,
    BackendInfo,
    FallbackReason,
    edgetpu_library,
    open_backend,
)
from custom_components.coral_vision.engine.inference.devices import EdgeTpu
from custom_components.coral_vision.engine.models.model import Model, load_model
from custom_components.coral_vision.engine.runtime import Runtime
from custom_components.coral_vision.engine.vision.preprocess import PreparedFrame, prepare_frame

from .conftest import classify_photo
from .fakes import FakeEdgeTpu, make_pci_tpu, make_usb_tpu

V1 = "mobilenet_v1_0.25_128_quant"


@pytest.fixture(scope="module")
def v1_cpu(models_dir: Path) -> Model:
    """A small classifier, CPU version."""
    return load_model(models_dir / f"{V1}.tflite")


@pytest.fixture(scope="module")
def v1_tpu(models_dir: Path) -> Model:
    """The same classifier compiled for the Edge TPU."""
    return load_model(models_dir / f"{V1}_edgetpu.tflite")


@pytest.fixture
def usb_tpu(tmp_path: Path) -> EdgeTpu:
    """A USB accelerator present in a fake sysfs."""
    return EdgeTpu("usb", 0, str(make_usb_tpu(tmp_path / "sys", "1-1")), "usb:0", None)


@pytest.fixture
def pci_tpu(tmp_path: Path) -> EdgeTpu:
    """A PCIe module present in a fake /dev."""
    return EdgeTpu("pci", 0, str(make_pci_tpu(tmp_path, tmp_path / "dev", 0)), "pci:0", None)


def recording(runtime: Runtime, calls: list[dict[str, Any]]) -> Runtime:
    """The runtime, recording the arguments of every interpreter it builds."""

    def factory(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return runtime.interpreter_factory(**kwargs)

    return dataclasses.replace(runtime, interpreter_factory=factory)


def is_cat(backend: Backend, image_bytes: dict[str, bytes]) -> bool:
    top = classify_photo(backend, image_bytes["cat.bmp"], top_k=3)
    return any("cat" in c.label for c in top)


def test_cpu_backend(mobilenet: Model, cpu_runtime: Runtime, image_bytes: dict[str, bytes]) -> None:
    calls: list[dict[str, Any]] = []
    backend = open_backend(mobilenet, None, runtime=recording(cpu_runtime, calls))
    assert backend.info == BackendInfo(
        kind="cpu",
        device=None,
        runtime="ai_edge_litert",
        fallback_reason=None,
        detail=f"CPU, {os.cpu_count()} threads",
        model_name=mobilenet.name,
    )
    assert backend.info.label == "CPU"
    assert calls[0]["num_threads"] == os.cpu_count()
    assert backend.model is mobilenet
    outputs = backend.invoke(prepare_frame(image_bytes["cat.bmp"], mobilenet.input))
    assert len(outputs) == 1
    assert outputs[0].shape == (1, 1001)
    assert outputs[0].dtype == np.uint8


def test_outputs_are_copies(mobilenet: Model, image_bytes: dict[str, bytes]) -> None:
    backend = open_backend(mobilenet, None, num_threads=1)
    first = backend.invoke(prepare_frame(image_bytes["cat.bmp"], mobilenet.input))[0].copy()
    kept = backend.invoke(prepare_frame(image_bytes["cat.bmp"], mobilenet.input))[0]
    backend.invoke(prepare_frame(image_bytes["sunflower.bmp"], mobilenet.input))
    np.testing.assert_array_equal(kept, first)


def test_edgetpu_model_on_cpu_is_refused_before_allocation(
    v1_tpu: Model, cpu_runtime: Runtime
) -> None:
    calls: list[dict[str, Any]] = []
    with pytest.raises(EdgeTpuModelOnCpuError, match="compiled for the Edge TPU"):
        open_backend(v1_tpu, None, runtime=recording(cpu_runtime, calls))
    assert calls == []


def test_edgetpu_model_on_cpu_uses_the_cpu_twin(
    v1_tpu: Model, v1_cpu: Model, image_bytes: dict[str, bytes]
) -> None:
    backend = open_backend(v1_tpu, None, cpu_model=v1_cpu, num_threads=1)
    assert backend.model is v1_cpu
    assert backend.info.kind == "cpu"
    assert backend.info.model_name == V1
    assert is_cat(backend, image_bytes)


def test_cpu_twin_must_match(v1_tpu: Model, mobilenet: Model) -> None:
    with pytest.raises(ModelError, match="cannot stand in"):
        open_backend(v1_tpu, None, cpu_model=mobilenet)


def test_tpu_success_usb(
    v1_tpu: Model, v1_cpu: Model, usb_tpu: EdgeTpu, image_bytes: dict[str, bytes]
) -> None:
    fake = FakeEdgeTpu(cpu_twin=v1_cpu.content)
    backend = open_backend(v1_tpu, usb_tpu, cpu_model=v1_cpu, runtime=fake.runtime())
    assert fake.load_calls == [(edgetpu_library(), {"device": "usb:0"})]
    assert backend.info.kind == "edgetpu-usb"
    assert backend.info.device == "usb:0"
    assert backend.info.fallback_reason is None
    assert backend.info.label == "Edge TPU (USB)"
    assert backend.model is v1_tpu
    assert is_cat(backend, image_bytes)
    assert fake.invokes == 1


def test_tpu_success_pcie(v1_tpu: Model, v1_cpu: Model, pci_tpu: EdgeTpu) -> None:
    fake = FakeEdgeTpu(cpu_twin=v1_cpu.content)
    backend = open_backend(v1_tpu, pci_tpu, runtime=fake.runtime())
    assert (backend.info.kind, backend.info.device, backend.info.label) == (
        "edgetpu-pci",
        "pci:0",
        "Edge TPU (PCIe)",
    )
    assert fake.load_calls[0][1] == {"device": "pci:0"}


def test_missing_library_falls_back_to_cpu(
    v1_tpu: Model, v1_cpu: Model, usb_tpu: EdgeTpu, image_bytes: dict[str, bytes]
) -> None:
    fake = FakeEdgeTpu(load_error=OSError("libedgetpu.so.1: cannot open shared object file"))
    backend = open_backend(v1_tpu, usb_tpu, cpu_model=v1_cpu, runtime=fake.runtime())
    assert backend.info.kind == "cpu"
    assert backend.info.fallback_reason is FallbackReason.NO_RUNTIME_LIBRARY
    assert "cannot open shared object file" in backend.info.detail
    assert backend.model is v1_cpu
    assert is_cat(backend, image_bytes)


def test_missing_library_without_cpu_twin_says_why(v1_tpu: Model, usb_tpu: EdgeTpu) -> None:
    fake = FakeEdgeTpu(load_error=OSError("libedgetpu.so.1: cannot open shared object file"))
    with pytest.raises(EdgeTpuModelOnCpuError, match="cannot open shared object file"):
        open_backend(v1_tpu, usb_tpu, runtime=fake.runtime())


def test_real_runtime_without_libedgetpu(v1_tpu: Model, v1_cpu: Model, usb_tpu: EdgeTpu) -> None:
    # This machine has no libedgetpu: the real load_delegate raises OSError.
    backend = open_backend(v1_tpu, usb_tpu, cpu_model=v1_cpu)
    assert backend.info.fallback_reason is FallbackReason.NO_RUNTIME_LIBRARY
    assert backend.info.kind == "cpu"


@pytest.mark.parametrize(
    ("message", "present", "reason"),
    [
        ("Failed to load delegate from libedgetpu.so.1\n", True, FallbackReason.DELEGATE_FAILED),
        ("Failed to load delegate from libedgetpu.so.1\n", False, FallbackReason.NO_DEVICE),
        ("Failed to load delegate: device busy", True, FallbackReason.DEVICE_BUSY),
    ],
)
def test_delegate_value_error_falls_back_with_reason(
    v1_tpu: Model,
    v1_cpu: Model,
    usb_tpu: EdgeTpu,
    message: str,
    present: bool,
    reason: FallbackReason,
) -> None:
    if not present:
        (Path(usb_tpu.path) / "idVendor").unlink()
        (Path(usb_tpu.path) / "idProduct").unlink()
        Path(usb_tpu.path).rmdir()
    fake = FakeEdgeTpu(load_error=ValueError(message))
    backend = open_backend(v1_tpu, usb_tpu, cpu_model=v1_cpu, runtime=fake.runtime())
    assert backend.info.fallback_reason is reason
    assert backend.info.kind == "cpu"
    assert "usb:0" in backend.info.detail


def test_runtime_without_delegates(v1_tpu: Model, v1_cpu: Model, usb_tpu: EdgeTpu) -> None:
    runtime = dataclasses.replace(FakeEdgeTpu().runtime(), load_delegate=None)
    backend = open_backend(v1_tpu, usb_tpu, cpu_model=v1_cpu, runtime=runtime)
    assert backend.info.fallback_reason is FallbackReason.NO_RUNTIME_LIBRARY


def test_delegate_failing_to_load_the_model_falls_back(
    v1_tpu: Model, v1_cpu: Model, usb_tpu: EdgeTpu
) -> None:
    fake = FakeEdgeTpu(cpu_twin=None)  # the fake interpreter raises ValueError
    backend = open_backend(v1_tpu, usb_tpu, cpu_model=v1_cpu, runtime=fake.runtime())
    assert backend.info.fallback_reason is FallbackReason.DELEGATE_FAILED
    assert backend.model is v1_cpu


def test_uncompiled_model_with_tpu_runs_on_cpu(
    v1_cpu: Model, usb_tpu: EdgeTpu, image_bytes: dict[str, bytes]
) -> None:
    fake = FakeEdgeTpu()
    backend = open_backend(v1_cpu, usb_tpu, runtime=fake.runtime())
    assert backend.info.fallback_reason is FallbackReason.MODEL_NOT_COMPILED
    assert backend.info.kind == "cpu"
    assert "_edgetpu.tflite" in backend.info.detail
    assert fake.load_calls == []  # the TPU stays free for models that can use it
    assert is_cat(backend, image_bytes)


def test_unplugged_tpu_raises_delegate_error(
    v1_tpu: Model, v1_cpu: Model, usb_tpu: EdgeTpu, image_bytes: dict[str, bytes]
) -> None:
    fake = FakeEdgeTpu(cpu_twin=v1_cpu.content)
    backend = open_backend(v1_tpu, usb_tpu, runtime=fake.runtime())
    frame = prepare_frame(image_bytes["cat.bmp"], v1_tpu.input)
    backend.invoke(frame)
    fake.unplug()
    with pytest.raises(DelegateError, match="USB transfer error"):
        backend.invoke(frame)
    fake.replug()
    assert len(backend.invoke(frame)) == 1


def test_hung_tpu_blocks_until_released(
    v1_tpu: Model, v1_cpu: Model, usb_tpu: EdgeTpu, image_bytes: dict[str, bytes]
) -> None:
    fake = FakeEdgeTpu(cpu_twin=v1_cpu.content)
    backend = open_backend(v1_tpu, usb_tpu, runtime=fake.runtime())
    frame = prepare_frame(image_bytes["cat.bmp"], v1_tpu.input)
    results: list[int] = []
    fake.hang()
    worker = threading.Thread(target=lambda: results.append(len(backend.invoke(frame))))
    worker.start()
    assert fake.blocked.wait(10)
    assert results == []
    fake.release()
    worker.join(10)
    assert results == [1]


def test_hang_timeout_raises(v1_tpu: Model, v1_cpu: Model, usb_tpu: EdgeTpu) -> None:
    fake = FakeEdgeTpu(cpu_twin=v1_cpu.content, hang_timeout=0.01)
    backend = open_backend(v1_tpu, usb_tpu, runtime=fake.runtime())
    fake.hang()
    with pytest.raises(DelegateError, match="hang_timeout"):
        backend.invoke(_blank_frame(v1_tpu))


def _blank_frame(model: Model) -> PreparedFrame:
    shape = (1, model.input.height, model.input.width, model.input.channels)
    return PreparedFrame(
        np.zeros(shape, model.input.dtype), (model.input.width, model.input.height)
    )


def test_cpu_invoke_failure_is_inference_error(mobilenet: Model, cpu_runtime: Runtime) -> None:
    class Failing:
        def __init__(self, real: Any) -> None:
            self.real = real

        def invoke(self) -> None:
            raise RuntimeError("Node number 3 (CONV_2D) failed to invoke.")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    runtime = dataclasses.replace(
        cpu_runtime,
        interpreter_factory=lambda **kw: Failing(cpu_runtime.interpreter_factory(**kw)),
    )
    backend = open_backend(mobilenet, None, runtime=runtime)
    with pytest.raises(InferenceError, match="failed to invoke"):
        backend.invoke(_blank_frame(mobilenet))


def test_wrong_frame_shape_or_type(mobilenet: Model, ssd_model: Model) -> None:
    backend = open_backend(mobilenet, None, num_threads=1)
    with pytest.raises(InferenceError, match=r"takes uint8 \[1, 224, 224, 3\]"):
        backend.invoke(_blank_frame(ssd_model))
    frame = _blank_frame(mobilenet)
    with pytest.raises(InferenceError, match="got float32"):
        backend.invoke(dataclasses.replace(frame, tensor=frame.tensor.astype(np.float32)))


def test_closed_backend(mobilenet: Model) -> None:
    backend = open_backend(mobilenet, None, num_threads=1)
    backend.close()
    backend.close()
    with pytest.raises(InferenceError, match="closed"):
        backend.invoke(_blank_frame(mobilenet))


def test_model_the_interpreter_cannot_allocate(mobilenet: Model, models_dir: Path) -> None:
    # model_invoking_error.tflite uses a custom op this runtime does not have: it loads, then
    # fails to allocate, which the backend reports as a ModelError naming the op.
    content = (models_dir / "invalid" / "model_invoking_error.tflite").read_bytes()
    broken = dataclasses.replace(mobilenet, content=content, name="model_invoking_error")
    with pytest.raises(ModelError, match=r"model_invoking_error.*fake-op-double"):
        open_backend(broken, None)


def test_edgetpu_library_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for system, name in [
        ("Linux", "libedgetpu.so.1"),
        ("Darwin", "libedgetpu.1.dylib"),
        ("Windows", "edgetpu.dll"),
    ]:
        monkeypatch.setattr(
            "custom_components.coral_vision.engine.inference.delegate.platform.system",
            lambda s=system: s,
        )
        assert edgetpu_library() == name
