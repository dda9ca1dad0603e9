"""Translations: every string formats in the frontend, and every key the code uses exists."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
from homeassistant.const import Platform
from homeassistant.helpers import config_validation as cv
from homeassistant.loader import Manifest
from homeassistant.util.yaml import load_yaml

from custom_components.coral_vision import device_trigger

from .icu_message import IcuError, icu_arguments, python_fields
from .translation_uses import find_uses

INTEGRATION = Path(__file__).resolve().parent.parent / "custom_components" / "coral_vision"
STRINGS: dict[str, Any] = json.loads((INTEGRATION / "strings.json").read_text("utf-8"))
# hassfest's rules for translation values and keys (script/hassfest/translations.py).
PLACEHOLDER_IN_QUOTES = re.compile(r"'{\w+}'")
URL = re.compile(
    r"(((ftp|ftps|scp|http|https|mqtt|mqtts|socket|socks5):\/\/|www\.)"
    r"[a-z0-9]+([\-\.]{1}[a-z0-9]+)*\.[a-z]{2,5}(:[0-9]{1,5})?(\/.*)?)",
    re.IGNORECASE,
)
KEY = re.compile(r"^(?!.+[_-]{2})(?![_-])[a-z0-9-_]+(?<![_-])$")


def leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, value) below a JSON object."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    else:
        yield path, node


def lookup(path: tuple[str, ...]) -> Any:
    """The strings.json node at `path`, or None."""
    node: Any = STRINGS
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def placeholders_of(node: Any) -> set[str]:
    """The placeholders of a string, or of every string below a node."""
    return set().union(*(icu_arguments(text) for _path, text in leaves(node)))


def test_english_is_strings_json() -> None:
    english = (INTEGRATION / "translations" / "en.json").read_text("utf-8")
    assert english == (INTEGRATION / "strings.json").read_text("utf-8")


def test_every_string_formats_in_the_frontend() -> None:
    problems = []
    for path, text in leaves(STRINGS):
        assert isinstance(text, str), f"{'.'.join(path)} is not a string"
        try:
            icu_arguments(text)
            # The backend fills exception messages and entity names in with str.format.
            python_fields(text)
        except IcuError as err:
            problems.append(f"{'.'.join(path)}: {err}")
    assert not problems, "\n".join(problems)


def test_strings_follow_hassfests_rules() -> None:
    problems = []
    for path, text in leaves(STRINGS):
        where = ".".join(path)
        try:
            cv.string_with_no_html(text)
        except vol.Invalid as err:
            problems.append(f"{where}: {err}")
        if PLACEHOLDER_IN_QUOTES.search(text):
            problems.append(f"{where}: a placeholder in single quotes is never filled in")
        if text != text.strip():
            problems.append(f"{where}: leading or trailing space")
        if URL.search(text):
            problems.append(f"{where}: a URL (give it as a placeholder)")
    flows = [("config",), ("options",)]
    flows += [("config_subentries", kind) for kind in STRINGS.get("config_subentries", {})]
    for flow in flows:
        for step, texts in (lookup(flow) or {}).get("step", {}).items():
            if extra := set(texts.get("data_description", {})) - set(texts.get("data", {})):
                problems.append(f"{'.'.join(flow)}.{step}: data_description without data {extra}")
    for platform, entities in STRINGS.get("entity", {}).items():
        for key, entity in entities.items():
            keys = [key, *entity.get("state", {})]
            problems.extend(
                f"entity.{platform}.{k}: not a valid key" for k in keys if not KEY.match(k)
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ("Found {found} Edge TPU(s).", {"found"}),
        ("`{path}`\n\n- Task: {task}", {"path", "task"}),
        ("The file's direct link; a < b, x -> y.", set()),
        ("Literal '{braces}' and '' an apostrophe", set()),
        ("{count, plural, one {# model} other {# models}} in {folder}", {"count", "folder"}),
        ("{kind, select, usb {USB} other {PCIe}}", {"kind"}),
        ("{when, date, short}", {"when"}),
    ],
)
def test_the_checker_reads_valid_messages(text: str, arguments: set[str]) -> None:
    assert icu_arguments(text) == arguments


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Under <config>/coral_vision/snapshots/.", "tag"),
        ("Bold <b>text</b>", "tag"),
        ("a </b> closing", "tag"),
        ("Found {found Edge TPUs", "placeholder name|expected"),
        ("Found {} TPUs", "placeholder name"),
        ("Found {two words}", "expected"),
        ("A stray } here", "closes nothing"),
        ("{count, plural, one {# model}}", "'other'"),
        ("{count, bogus}", "unknown argument type"),
        ("It's '{not closed", "never closed"),
    ],
)
def test_the_checker_refuses_what_the_frontend_cannot_format(text: str, problem: str) -> None:
    with pytest.raises(IcuError, match=problem):
        icu_arguments(text)


def test_python_formatted_strings_have_plain_fields() -> None:
    assert python_fields("Cannot read {file}: {error}") == {"file", "error"}
    for bad in ("{file!r}", "{0}", "{file:>10}", "an { open"):
        with pytest.raises(IcuError):
            python_fields(bad)


def test_every_translation_the_code_uses_exists() -> None:
    found = find_uses(INTEGRATION, {platform.value for platform in Platform})
    assert not found.unresolved, "the check cannot follow:\n" + "\n".join(found.unresolved)
    assert len(found.uses) > 40, "the source reader found too little: is it still reading?"
    missing = []
    for use in found.uses:
        node = lookup(use.path)
        if node is None:
            missing.append(f"{use.where}: {'.'.join(use.path)} is missing")
            continue
        if use.placeholders is None:
            continue
        if unfilled := placeholders_of(node) - use.placeholders:
            missing.append(f"{use.where}: {'.'.join(use.path)} needs {sorted(unfilled)}")
    assert not missing, "\n".join(missing)


def test_the_reader_finds_computed_keys() -> None:
    paths = {use.path for use in find_uses(INTEGRATION, {p.value for p in Platform}).uses}
    # Through error_key() and its dict, a walrus, `self._error or ...`, a helper's parameter.
    assert ("config", "error", "download_redirects") in paths
    # Set by the server steps (a base class in another module), shown by the handler's form.
    assert ("config", "error", "server_model_failed") in paths
    assert ("config", "error", "file_missing") in paths
    assert ("config", "error", "inference_failed") in paths
    assert ("config_subentries", "camera", "error", "region_degenerate") in paths
    assert ("exceptions", "no_target", "message") in paths
    assert ("issues", "runtime_missing_musl", "description") in paths
    assert ("entity", "sensor", "backend", "state", "edgetpu_pci") in paths


def test_subentry_types_have_their_buttons() -> None:
    for kind, node in STRINGS["config_subentries"].items():
        assert node["initiate_flow"]["user"], kind
        assert node["entry_type"], kind


def test_device_trigger_types_are_worded() -> None:
    types = None
    for key, validator in device_trigger.TRIGGER_SCHEMA.schema.items():
        if str(key) == "type" and isinstance(validator, vol.In):
            types = set(validator.container)
    assert types, "the device trigger schema no longer lists its types with vol.In"
    for kind in types:
        assert lookup(("device_automation", "trigger_type", kind)), kind


def test_services_are_worded() -> None:
    services = load_yaml(str(INTEGRATION / "services.yaml")) or {}
    assert set(STRINGS["services"]) == set(services)
    for name, spec in services.items():
        worded = STRINGS["services"][name]
        assert worded["name"]
        assert worded["description"]
        fields = (spec or {}).get("fields", {})
        assert set(worded.get("fields", {})) == set(fields), name
        for field in fields:
            assert worded["fields"][field]["name"]
            assert worded["fields"][field]["description"]


def test_integration_page_says_accelerator_not_hub() -> None:
    manifest = json.loads((INTEGRATION / "manifest.json").read_text("utf-8"))
    allowed = typing.get_args(typing.get_type_hints(Manifest)["integration_type"])
    assert manifest["integration_type"] in allowed
    # Each entry is one accelerator (a device); "hub" made the page say "Add hub" and "Hubs".
    assert manifest["integration_type"] == "device"
    assert STRINGS["config"]["initiate_flow"]["user"] == "Add accelerator"
