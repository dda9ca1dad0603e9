"""The camera subentry flow: add and edit cameras of a running accelerator, applied at once."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import (
    ConfigEntryState,
    ConfigSubentryData,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.coral_vision.const import DEFAULT_MIN_SCORE, DOMAIN, SUBENTRY_CAMERA
from custom_components.coral_vision.processor import CameraSettings

from .conftest import CAMERA, PhotoCamera, camera_subentry, cpu_entry
from .helpers import FILTERS, IP, edit_camera, scan, set_up, start_camera, submit, unload

STRINGS = Path(__file__).parents[2] / "custom_components" / DOMAIN / "strings.json"
PERSON = "binary_sensor.front_door_person_detected"
TIE = "binary_sensor.front_door_tie_detected"
CAT = "binary_sensor.front_door_cat_detected"
BOTTOM_HALF = "0,0.5; 1,0.5; 1,1; 0,1"


def defaults(result: Any) -> dict[str, Any]:
    """Each form field's default."""
    return {str(k): k.default() for k in result["data_schema"].schema if callable(k.default)}


async def test_add_camera_creates_its_entities(
    hass: HomeAssistant,
    accelerator: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
) -> None:
    result = await start_camera(hass, accelerator)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert defaults(result) == {"labels": ["person"], "scan_interval": 5}
    labels_field = next(k for k in result["data_schema"].schema if str(k) == "labels")
    offered = result["data_schema"].schema[labels_field].config["options"]
    assert {"cat", "person"} <= set(offered)

    result = await submit(
        hass, result, {"camera_entity": CAMERA, "labels": ["person", "cat"], "scan_interval": 0}
    )
    assert result["step_id"] == "scores"
    assert defaults(result) == {"person": DEFAULT_MIN_SCORE, "cat": DEFAULT_MIN_SCORE}
    result = await submit(hass, result, {"person": 0.5, "cat": 0.4})
    assert result["step_id"] == "filters"
    result = await submit(hass, result, {**FILTERS, "confirm_frames": 1.0, "off_delay": 5})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Front door"
    assert result["data"] == {
        "camera_entity": CAMERA,
        "labels": ["person", "cat"],
        "scan_interval": 0,
        "scores": {"person": 0.5, "cat": 0.4},
        "min_score": 0.4,
        **FILTERS,
        "off_delay": 5,
    }
    assert isinstance(result["data"]["confirm_frames"], int)
    settings = CameraSettings.from_data(result["data"])
    assert settings.labels == ("person", "cat")
    assert settings.object_filter.scores == {"person": 0.5, "cat": 0.4}
    assert not settings.object_filter.region, "the whole frame"
    (subentry,) = accelerator.subentries.values()
    assert subentry.unique_id == CAMERA

    # The entry reloads on its own and the camera's entities run.
    await hass.async_block_till_done()
    assert accelerator.state is ConfigEntryState.LOADED
    assert list(accelerator.runtime_data.processors) == [subentry.subentry_id]
    for entity_id in (IP, PERSON, CAT):
        assert hass.states.get(entity_id) is not None, entity_id
    photo_camera.photo = images_dir / "cat.bmp"
    await scan(hass)
    assert hass.states.get(CAT).state == "on"
    assert hass.states.get(PERSON).state == "off"


async def test_no_labels(hass: HomeAssistant, accelerator: MockConfigEntry) -> None:
    result = await start_camera(hass, accelerator)
    result = await submit(hass, result, {"camera_entity": CAMERA, "labels": [], "scan_interval": 5})
    assert result["step_id"] == "user"
    assert result["errors"] == {"labels": "no_labels"}


def excluded(result: Any) -> list[str] | None:
    """The cameras the camera picker leaves out."""
    field = next(k for k in result["data_schema"].schema if str(k) == "camera_entity")
    exclude: list[str] | None = result["data_schema"].schema[field].config.get("exclude_entities")
    return exclude


async def test_the_picker_leaves_out_cameras_already_added(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    result = await start_camera(hass, loaded_entry)
    assert excluded(result) == [CAMERA]
    # Through the API anyway: the form refuses it, on its field.
    with pytest.raises(InvalidData) as refused:
        await submit(hass, result, {"camera_entity": CAMERA, "labels": ["cat"], "scan_interval": 5})
    assert set(refused.value.schema_errors) == {"camera_entity"}
    assert len(loaded_entry.subentries) == 1
    hass.config_entries.subentries.async_abort(result["flow_id"])


async def test_a_camera_added_meanwhile_is_refused(
    hass: HomeAssistant, accelerator: MockConfigEntry
) -> None:
    # Two dialogs open at once: the second one's picker still offered the camera.
    first, second = await start_camera(hass, accelerator), await start_camera(hass, accelerator)
    assert excluded(first) is None
    camera = {"camera_entity": CAMERA, "labels": ["person"], "scan_interval": 5}
    result = await submit(hass, first, camera)
    result = await submit(hass, result, {"person": 0.5})
    result = await submit(hass, result, FILTERS)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    result = await submit(hass, second, camera)
    assert result["step_id"] == "user"
    assert translated(result["errors"]) == {"camera_entity": "camera_already_added"}
    assert excluded(result) == [CAMERA]
    assert len(accelerator.subentries) == 1
    hass.config_entries.subentries.async_abort(result["flow_id"])


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"region": "0,0; 1,1"}, {"region": "invalid_region"}),
        ({"region": "0,0; 2,0; 1,1"}, {"region": "invalid_region"}),
        ({"min_area": 50, "max_area": 10}, {"min_area": "area_order"}),
        ({"confirm_frames": 3, "confirm_window": 2}, {"confirm_frames": "confirm_order"}),
        (
            {"region": "x", "min_area": 50, "max_area": 10},
            {"region": "invalid_region", "min_area": "area_order"},
        ),
    ],
)
async def test_filter_errors(
    hass: HomeAssistant,
    accelerator: MockConfigEntry,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    result = await start_camera(hass, accelerator)
    result = await submit(
        hass, result, {"camera_entity": CAMERA, "labels": ["person"], "scan_interval": 5}
    )
    result = await submit(hass, result, {"person": 0.5})
    result = await submit(hass, result, {**FILTERS, **changes})
    assert result["step_id"] == "filters"
    assert result["errors"] == errors
    assert {k: v for k, v in defaults(result).items() if k in changes} == changes, "kept"

    result = await submit(hass, result, FILTERS)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


async def test_entry_not_loaded(hass: HomeAssistant) -> None:
    entry = cpu_entry()
    entry.add_to_hass(hass)
    result = await start_camera(hass, entry)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"


async def test_reconfigure_applies_new_labels_and_region(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    photo_camera: PhotoCamera,
    images_dir: Path,
    entity_registry: er.EntityRegistry,
) -> None:
    subentry_id = next(iter(loaded_entry.subentries))
    subentry = loaded_entry.subentries[subentry_id]
    # A score unlike the default, to see that editing keeps it.
    scores = {**subentry.data["scores"], "person": 0.55}
    hass.config_entries.async_update_subentry(
        loaded_entry, subentry, data={**subentry.data, "scores": scores}
    )
    await hass.async_block_till_done()
    assert hass.states.get(TIE) is not None
    old_processor = loaded_entry.runtime_data.processors[subentry_id]

    result = await edit_camera(hass, loaded_entry, subentry_id)
    assert result["step_id"] == "user"
    assert defaults(result) == {
        "camera_entity": CAMERA,
        "labels": ["person", "tie"],
        "scan_interval": 0,
    }
    result = await submit(
        hass, result, {"camera_entity": CAMERA, "labels": ["person", "cat"], "scan_interval": 0}
    )
    assert result["step_id"] == "scores"
    assert defaults(result) == {"person": 0.55, "cat": DEFAULT_MIN_SCORE}, "the old score is kept"
    result = await submit(hass, result, {"person": 0.5, "cat": 0.5})
    assert result["step_id"] == "filters"
    assert defaults(result)["off_delay"] == 0
    result = await submit(hass, result, {**FILTERS, "region": BOTTOM_HALF})

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()

    subentry = loaded_entry.subentries[subentry_id]
    assert subentry.data["labels"] == ["person", "cat"]
    assert subentry.data["scores"] == {"person": 0.5, "cat": 0.5}
    assert subentry.data["region"] == BOTTOM_HALF
    assert loaded_entry.state is ConfigEntryState.LOADED
    processor = loaded_entry.runtime_data.processors[subentry_id]
    assert processor is not old_processor, "reloaded"
    assert processor.settings.labels == ("person", "cat")
    assert processor.settings.object_filter.region is not None

    # The dropped label's sensor is gone, state and registry entry; the new one works.
    assert hass.states.get(TIE) is None
    assert entity_registry.async_get(TIE) is None
    assert entity_registry.async_get(CAT) is not None
    assert entity_registry.async_get(PERSON) is not None
    photo_camera.photo = images_dir / "cat.bmp"
    await scan(hass)
    assert hass.states.get(CAT).state == "on"
    photo_camera.photo = images_dir / "grace_hopper.bmp"
    await scan(hass)
    assert hass.states.get(PERSON).state == "on", "her feet are in the bottom half"


async def test_reconfigure_onto_another_cameras_entity_is_refused(
    hass: HomeAssistant, photo_camera: PhotoCamera
) -> None:
    back_door = ConfigSubentryData(
        data={**camera_subentry()["data"], "camera_entity": "camera.back_door"},
        subentry_type=SUBENTRY_CAMERA,
        title="Back door",
        unique_id="camera.back_door",
    )
    entry = cpu_entry(camera_subentry(), back_door)
    await set_up(hass, entry)
    back_id = next(k for k, s in entry.subentries.items() if s.title == "Back door")

    result = await edit_camera(hass, entry, back_id)
    assert excluded(result) == [CAMERA], "the other camera only: its own stays"
    with pytest.raises(InvalidData):
        await submit(
            hass, result, {"camera_entity": CAMERA, "labels": ["person"], "scan_interval": 0}
        )

    # Keeping its own camera is fine.
    result = await submit(
        hass,
        result,
        {"camera_entity": "camera.back_door", "labels": ["person"], "scan_interval": 0},
    )
    assert result["step_id"] == "scores"
    hass.config_entries.subentries.async_abort(result["flow_id"])
    await unload(hass, entry)


async def test_reconfigure_of_an_unloaded_entry_aborts(hass: HomeAssistant) -> None:
    entry = cpu_entry(camera_subentry())
    entry.add_to_hass(hass)
    result = await edit_camera(hass, entry, next(iter(entry.subentries)))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"


def translated(errors: dict[str, str]) -> dict[str, str]:
    """The form errors, each checked to have its text in strings.json."""
    strings = json.loads(STRINGS.read_text())["config_subentries"]["camera"]["error"]
    assert set(errors.values()) <= set(strings), "an error without a message"
    return errors


def circle(points: int) -> str:
    """A region of `points` corners on a circle."""
    return "; ".join(
        f"{0.5 + 0.4 * math.cos(2 * math.pi * i / points):.4f},"
        f"{0.5 + 0.4 * math.sin(2 * math.pi * i / points):.4f}"
        for i in range(points)
    )


async def to_filters(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    """Start adding a camera and walk to the filters step."""
    result = await start_camera(hass, entry)
    result = await submit(
        hass, result, {"camera_entity": CAMERA, "labels": ["person"], "scan_interval": 5}
    )
    result = await submit(hass, result, {"person": 0.5})
    assert result["step_id"] == "filters"
    return result


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"scan_interval": 0.01}, {"scan_interval": "scan_interval_too_short"}),
        ({"scan_interval": 0.49}, {"scan_interval": "scan_interval_too_short"}),
        ({"scan_interval": float("nan")}, {"scan_interval": "not_a_number"}),
        ({"camera_entity": "camera.nowhere"}, {"camera_entity": "camera_missing"}),
        (
            {"camera_entity": "camera.nowhere", "labels": [], "scan_interval": 0.1},
            {
                "camera_entity": "camera_missing",
                "labels": "no_labels",
                "scan_interval": "scan_interval_too_short",
            },
        ),
    ],
)
async def test_camera_step_refusals(
    hass: HomeAssistant,
    accelerator: MockConfigEntry,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    result = await start_camera(hass, accelerator)
    camera = {"camera_entity": CAMERA, "labels": ["person"], "scan_interval": 5}
    result = await submit(hass, result, {**camera, **changes})
    assert result["step_id"] == "user"
    assert translated(result["errors"]) == errors

    # The shortest interval allowed.
    result = await submit(hass, result, {**camera, "scan_interval": 0.5})
    assert result["step_id"] == "scores"
    hass.config_entries.subentries.async_abort(result["flow_id"])


async def test_a_registered_camera_without_a_state_exists(
    hass: HomeAssistant, accelerator: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    result = await start_camera(hass, accelerator)
    camera = {"labels": ["person"], "scan_interval": 5}
    result = await submit(hass, result, {**camera, "camera_entity": "camera.porch"})
    assert result["errors"] == {"camera_entity": "camera_missing"}

    # Its integration is not running now (it failed to start, or is disabled): it still exists.
    porch = entity_registry.async_get_or_create(
        "camera", "other", "porch-1", suggested_object_id="porch"
    )
    assert hass.states.get(porch.entity_id) is None
    result = await submit(hass, result, {**camera, "camera_entity": porch.entity_id})
    assert result["step_id"] == "scores"
    hass.config_entries.subentries.async_abort(result["flow_id"])


async def test_a_score_must_be_a_number(hass: HomeAssistant, accelerator: MockConfigEntry) -> None:
    result = await start_camera(hass, accelerator)
    result = await submit(
        hass, result, {"camera_entity": CAMERA, "labels": ["person", "cat"], "scan_interval": 5}
    )
    result = await submit(hass, result, {"person": float("nan"), "cat": 0.5})
    assert result["step_id"] == "scores"
    assert translated(result["errors"]) == {"person": "not_a_number"}
    result = await submit(hass, result, {"person": 0.5, "cat": 0.5})
    assert result["step_id"] == "filters"
    hass.config_entries.subentries.async_abort(result["flow_id"])


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"confirm_frames": 2.5, "confirm_window": 3}, {"confirm_frames": "not_whole"}),
        ({"confirm_frames": 1, "confirm_window": 2.5}, {"confirm_window": "not_whole"}),
        ({"confirm_frames": 2.5, "confirm_window": 2}, {"confirm_frames": "not_whole"}),
        ({"confirm_window": float("nan")}, {"confirm_window": "not_whole"}),
        ({"min_area": float("nan")}, {"min_area": "not_a_number"}),
        ({"max_area": float("nan")}, {"max_area": "not_a_number"}),
        ({"off_delay": float("nan")}, {"off_delay": "not_a_number"}),
        ({"region": "0,0; 0.5,0.5; 1,1"}, {"region": "region_degenerate"}),
        ({"region": "0.2,0.2; 0.2,0.2; 0.8,0.8; 0.8,0.8"}, {"region": "region_degenerate"}),
        ({"region": "0,0; 1,1; 1,0; 0,1"}, {"region": "region_degenerate"}),
        ({"region": "0,0; 1,0; 0.5,0; 0.5,1"}, {"region": "region_degenerate"}),
        (
            {"region": circle(101)},
            {"region": "region_degenerate"},
        ),
    ],
)
async def test_more_filter_refusals(
    hass: HomeAssistant,
    accelerator: MockConfigEntry,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    result = await to_filters(hass, accelerator)
    result = await submit(hass, result, {**FILTERS, **changes})
    assert result["step_id"] == "filters"
    assert translated(result["errors"]) == errors

    # A region may close itself and have a straight corner; 3.0 frames is a whole number.
    region = "0,0.5; 0.5,0.5; 1,0.5; 1,1; 0,1; 0,0.5"
    result = await submit(
        hass, result, {**FILTERS, "confirm_frames": 2, "confirm_window": 3.0, "region": region}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["confirm_window"] == 3
    assert result["data"]["region"] == region
    await hass.async_block_till_done()


async def test_editing_a_camera_is_checked_too(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    subentry_id = next(iter(loaded_entry.subentries))
    result = await edit_camera(hass, loaded_entry, subentry_id)
    result = await submit(
        hass, result, {"camera_entity": CAMERA, "labels": ["person"], "scan_interval": 0.05}
    )
    assert result["step_id"] == "user"
    assert result["errors"] == {"scan_interval": "scan_interval_too_short"}
    result = await submit(
        hass, result, {"camera_entity": CAMERA, "labels": ["person"], "scan_interval": 1}
    )
    result = await submit(hass, result, {"person": 0.5})
    result = await submit(hass, result, {**FILTERS, "confirm_frames": 1.5, "confirm_window": 2})
    assert result["errors"] == {"confirm_frames": "not_whole"}
    hass.config_entries.subentries.async_abort(result["flow_id"])
    assert loaded_entry.subentries[subentry_id].data["scan_interval"] == 0, "unchanged"


async def test_a_stored_interval_below_the_minimum_is_raised(
    hass: HomeAssistant, photo_camera: PhotoCamera
) -> None:
    # Saved before the form refused it: the camera is not polled 100 times a second.
    entry = cpu_entry(camera_subentry(scan_interval=0.01))
    await set_up(hass, entry)
    (processor,) = entry.runtime_data.processors.values()
    assert processor.settings.scan_interval == 0.5
    assert (
        CameraSettings.from_data({"camera_entity": CAMERA, "scan_interval": 0}).scan_interval == 0
    )
    await unload(hass, entry)
