"""The coral_vision.detect and coral_vision.classify actions on cameras and files, and their errors."""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import json
import os
import shutil
import threading
import tracemalloc
from collections import Counter
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from custom_components.coral_vision.const import DOMAIN
from custom_components.coral_vision.engine.vision.image_guard import MAX_IMAGE_BYTES

from .conftest import CAMERA, PhotoCamera
from .helpers import loaded, unload

STRINGS = Path(__file__).parents[2] / "custom_components" / DOMAIN / "strings.json"
CLASSIFIER = "mobilenet_v2_imagenet"


async def call(hass: HomeAssistant, action: str, **data: Any) -> dict[str, Any]:
    """Call an action and return its response."""
    response = await hass.services.async_call(
        DOMAIN, action, data, blocking=True, return_response=True
    )
    assert response is not None
    return dict(response)


async def fails(hass: HomeAssistant, action: str, **data: Any) -> HomeAssistantError:
    """Call an action that must fail with a translated error; return the error."""
    with pytest.raises(HomeAssistantError) as info:
        await call(hass, action, **data)
    err = info.value
    exceptions = json.loads(STRINGS.read_text())["exceptions"]
    assert err.translation_domain == DOMAIN
    assert err.translation_key in exceptions, f"{err.translation_key} has no message"
    message = exceptions[err.translation_key]["message"]
    for name in err.translation_placeholders or {}:
        assert f"{{{name}}}" in message
    return err


@pytest.fixture
def allow_images(hass: HomeAssistant, images_dir: Path) -> Path:
    """Let actions read ../shared/images."""
    hass.config.allowlist_external_dirs = {str(images_dir)}
    return images_dir


@pytest.fixture
async def classifier(hass: HomeAssistant) -> AsyncGenerator[MockConfigEntry]:
    """A second CPU accelerator running an ImageNet classifier (no cameras)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Classifier",
        data={"device": "cpu", "model": CLASSIFIER},
        unique_id="cpu-classifier",
    )
    async with loaded(hass, entry):
        yield entry


async def test_detect_on_a_camera(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera, images_dir: Path
) -> None:
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    response = await call(hass, "detect", entity_id=CAMERA)
    assert response["source"] == CAMERA
    assert response["image_size"] == [512, 600]
    assert response["backend"] == "CPU"
    assert response["inference_ms"] > 0
    person = next(d for d in response["detections"] if d["label"] == "person")
    assert person["score"] >= 0.5
    xmin, ymin, xmax, ymax = person["box"]
    assert 0 <= xmin < xmax <= 512
    assert 0 <= ymin < ymax <= 600
    assert all(d["score"] >= 0.5 for d in response["detections"])
    assert "classes" not in response

    photo_camera.photo = images_dir / "sunflower.bmp"
    response = await call(hass, "detect", entity_id=CAMERA)
    assert "person" not in {d["label"] for d in response["detections"]}


async def test_detect_on_a_file_with_score_and_count_limits(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, allow_images: Path
) -> None:
    file = str(allow_images / "kite_and_cold.jpg")
    response = await call(hass, "detect", file=file, min_score=0.3)
    assert response["source"] == file
    labels = Counter(d["label"] for d in response["detections"])
    assert labels["person"] >= 2
    assert labels["kite"] >= 2
    scores = [d["score"] for d in response["detections"]]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= 0.3

    top = await call(
        hass, "detect", file=file, min_score=0.3, top_k=2, config_entry_id=loaded_entry.entry_id
    )
    assert top["detections"] == response["detections"][:2]


async def test_classify_a_file_and_a_camera(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    classifier: MockConfigEntry,
    photo_camera: PhotoCamera,
    allow_images: Path,
) -> None:
    response = await call(hass, "classify", file=str(allow_images / "cat.bmp"))
    assert "detections" not in response
    classes = response["classes"]
    assert 1 <= len(classes) <= 5, "classify returns the top 5 by default"
    assert "cat" in classes[0]["label"].lower()
    assert classes[0]["score"] >= 0.1

    photo_camera.photo = allow_images / "cat.bmp"
    from_camera = await call(
        hass, "classify", entity_id=CAMERA, config_entry_id=classifier.entry_id, top_k=1
    )
    assert from_camera["source"] == CAMERA
    assert [c["label"] for c in from_camera["classes"]] == [classes[0]["label"]]

    # The detector is picked for detect although the classifier is loaded too.
    detected = await call(hass, "detect", entity_id=CAMERA)
    assert "cat" in {d["label"] for d in detected["detections"]}


async def test_target_errors(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    allow_images: Path,
    tmp_path: Path,
) -> None:
    err = await fails(hass, "detect")
    assert isinstance(err, ServiceValidationError)
    assert err.translation_key == "no_target"

    err = await fails(hass, "detect", file=str(tmp_path / "secret.jpg"))
    assert isinstance(err, ServiceValidationError)
    assert err.translation_key == "file_not_allowed"

    err = await fails(hass, "detect", file=str(allow_images / "no_such_photo.jpg"))
    assert err.translation_key == "file_missing"
    err = await fails(hass, "detect", file=str(allow_images))
    assert err.translation_key == "file_missing", "a folder is no image file"

    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8 this is not a JPEG " * 100)
    hass.config.allowlist_external_dirs = {str(allow_images), str(tmp_path)}
    err = await fails(hass, "detect", file=str(garbage))
    assert isinstance(err, ServiceValidationError)
    assert err.translation_key == "image_invalid"
    assert str(garbage) in str(err.translation_placeholders)

    # A camera that gives no image fails at run time: not the caller's input.
    photo_camera.photo = None
    err = await fails(hass, "detect", entity_id=CAMERA)
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "camera_unavailable"
    assert (err.translation_placeholders or {}).get("entity_id") == CAMERA

    with pytest.raises(Exception, match="target"):
        await call(hass, "detect", entity_id=CAMERA, file=str(garbage))


async def test_accelerator_errors(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera
) -> None:
    err = await fails(hass, "detect", entity_id=CAMERA, config_entry_id="nope")
    assert err.translation_key == "accelerator_not_loaded"

    err = await fails(hass, "classify", entity_id=CAMERA, config_entry_id=loaded_entry.entry_id)
    assert err.translation_key == "wrong_task"
    assert (err.translation_placeholders or {}).get("task") == "classification"

    err = await fails(hass, "classify", entity_id=CAMERA)
    assert err.translation_key == "no_accelerator"

    await unload(hass, loaded_entry)
    err = await fails(hass, "detect", entity_id=CAMERA)
    assert err.translation_key == "no_accelerator"
    err = await fails(hass, "detect", entity_id=CAMERA, config_entry_id=loaded_entry.entry_id)
    assert err.translation_key == "accelerator_not_loaded"


async def test_no_accelerator_set_up_at_all(hass: HomeAssistant, photo_camera: PhotoCamera) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    err = await fails(hass, "detect", entity_id=CAMERA)
    assert isinstance(err, ServiceValidationError)
    assert err.translation_key == "no_accelerator"


async def test_a_relative_file_is_read_from_the_config_folder(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, images_dir: Path, config_in_tmp: Path
) -> None:
    www = config_in_tmp / "www"
    www.mkdir()
    (www / "door.bmp").write_bytes((images_dir / "grace_hopper.bmp").read_bytes())
    hass.config.allowlist_external_dirs = {str(www)}
    response = await call(hass, "detect", file="www/door.bmp")
    assert response["source"] == str(www / "door.bmp")
    assert "person" in {d["label"] for d in response["detections"]}


async def test_a_file_above_the_size_cap_is_refused_unread(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, tmp_path: Path
) -> None:
    # Sparse: 256 MiB on paper, no disk space; a read would cost 256 MiB of memory.
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as file:
        file.truncate(256 * 2**20)
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    tracemalloc.start()
    try:
        err = await fails(hass, "detect", file=str(huge))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(err, ServiceValidationError)
    assert err.translation_key == "file_too_large"
    assert (err.translation_placeholders or {})["limit"] == f"{MAX_IMAGE_BYTES // 2**20} MiB"
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MiB allocated: the file was read"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("a" * 300 + ".jpg", id="name-too-long"),
        pytest.param("/".join(["b" * 250] * 20) + ".jpg", id="path-too-long"),
        pytest.param("nul\x00byte.jpg", id="nul-byte"),
    ],
)
async def test_a_malformed_file_name_is_a_validation_error(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, tmp_path: Path, name: str
) -> None:
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    err = await fails(hass, "detect", file=str(tmp_path / name))
    assert isinstance(err, ServiceValidationError)
    assert err.translation_key == "file_unreadable", err.translation_key
    assert len(str((err.translation_placeholders or {})["file"])) <= 201, "shortened"


async def test_the_allowlist_is_checked_off_the_event_loop(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, allow_images: Path
) -> None:
    checked_on: list[int] = []
    original = hass.config.is_allowed_path

    def is_allowed_path(path: str) -> bool:
        checked_on.append(threading.get_ident())
        return original(path)

    with patch.object(hass.config, "is_allowed_path", is_allowed_path):
        response = await call(hass, "detect", file=str(allow_images / "grace_hopper.bmp"))
    assert "person" in {d["label"] for d in response["detections"]}
    assert checked_on
    assert hass.loop_thread_id not in checked_on


async def test_a_camera_that_raises_is_a_failure_not_bad_input(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, photo_camera: PhotoCamera
) -> None:
    async def broken(width: int | None = None, height: int | None = None) -> bytes | None:
        raise RuntimeError("lens cap on")

    with patch.object(photo_camera, "async_camera_image", broken):
        err = await fails(hass, "detect", entity_id=CAMERA)
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "camera_unavailable"
    assert (err.translation_placeholders or {})["error"] == "lens cap on"


async def test_an_allowed_file_the_disk_fails_to_read_is_a_failure_not_bad_input(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    # A regular file (stat says so) whose read fails with EIO: a disk error at run time.
    hass.config.allowlist_external_dirs = {"/proc"}
    err = await fails(hass, "detect", file="/proc/self/mem")
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "file_unreadable"
    assert "Input/output error" in (err.translation_placeholders or {})["error"]


@pytest.fixture
async def stray_model(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, config_in_tmp: Path, models_dir: Path
) -> Path:
    """A model file left in the models folder by an earlier choice."""
    stray = config_in_tmp / DOMAIN / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    shutil.copy(models_dir / stray.name, stray)
    return stray


async def test_only_admins_remove_models(
    hass: HomeAssistant,
    stray_model: Path,
    hass_read_only_user: MockUser,
    hass_admin_user: MockUser,
) -> None:
    reader = Context(user_id=hass_read_only_user.id)
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN, "remove_unused_models", {}, blocking=True, return_response=True, context=reader
        )
    assert stray_model.exists()
    # Listing changes nothing: anyone may.
    listing = await hass.services.async_call(
        DOMAIN, "list_models", {}, blocking=True, return_response=True, context=reader
    )
    assert listing is not None
    assert stray_model.name in {m["path"] for m in listing["models"]}  # type: ignore[union-attr,index]

    removed = await hass.services.async_call(
        DOMAIN,
        "remove_unused_models",
        {},
        blocking=True,
        return_response=True,
        context=Context(user_id=hass_admin_user.id),
    )
    assert removed == {"removed": [stray_model.name]}
    assert not stray_model.exists()

    # An automation or a script calls with no user: a system call.
    stray_model.write_bytes(b"left over")
    await hass.services.async_call(DOMAIN, "remove_unused_models", {}, blocking=True)
    assert not stray_model.exists()


async def test_an_unknown_user_cannot_remove_models(hass: HomeAssistant, stray_model: Path) -> None:
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN,
            "remove_unused_models",
            {},
            blocking=True,
            context=Context(user_id="no-such-user"),
        )
    assert stray_model.exists()


# linux/fs.h: the inode flags ioctls, and the immutable flag (no unlink, even by root).
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


def _set_immutable(path: Path, on: bool) -> None:
    """Set or clear a file's immutable flag (chattr +i / -i)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        flags[0] = flags[0] | FS_IMMUTABLE_FL if on else flags[0] & ~FS_IMMUTABLE_FL
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags)
    finally:
        os.close(fd)


@contextlib.contextmanager
def undeletable(path: Path) -> Iterator[None]:
    """Make a file impossible to delete: immutable for root, else its folder read-only."""
    if os.geteuid() == 0:
        _set_immutable(path, True)
        try:
            yield
        finally:
            _set_immutable(path, False)
        return
    path.parent.chmod(0o555)
    try:
        yield
    finally:
        path.parent.chmod(0o755)


async def test_a_models_folder_that_fails_is_a_translated_error(
    hass: HomeAssistant, stray_model: Path
) -> None:
    with undeletable(stray_model):
        err = await fails(hass, "remove_unused_models")
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "models_folder_failed"
    assert isinstance(err.__cause__, OSError)
    assert (err.translation_placeholders or {})["folder"] == str(stray_model.parent)
    assert stray_model.exists()

    # A disk error while listing (EIO, which this machine cannot produce on demand there).
    with patch(
        "custom_components.coral_vision.services.list_models",
        side_effect=OSError(errno.EIO, "Input/output error"),
    ):
        err = await fails(hass, "list_models")
    assert err.translation_key == "models_folder_failed"
    assert "Input/output error" in (err.translation_placeholders or {})["error"]
