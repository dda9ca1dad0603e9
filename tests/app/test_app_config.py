"""The app's files against the Home Assistant developer docs ("Apps": configuration, repository,
presentation), as of the Supervisor 2026 releases; and the files that must agree with each other.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import REPO

from .conftest import APP_DIR, read_yaml

# docs/apps/configuration.md: required keys, and every optional key it lists.
REQUIRED_KEYS = {"name", "version", "slug", "description", "arch"}
OPTIONAL_KEYS = {
    "machine", "url", "startup", "webui", "boot", "ports", "ports_description", "host_network",
    "host_ipc", "host_dbus", "host_pid", "host_uts", "devices", "homeassistant", "hassio_role",
    "hassio_api", "homeassistant_api", "docker_api", "privileged", "full_access", "apparmor",
    "map", "environment", "audio", "video", "gpio", "usb", "uart", "udev", "devicetree",
    "kernel_modules", "stdin", "legacy", "options", "schema", "image", "timeout", "tmpfs",
    "discovery", "services", "auth_api", "ingress", "ingress_port", "ingress_entry",
    "ingress_stream", "panel_icon", "panel_title", "panel_admin", "backup", "backup_pre",
    "backup_post", "backup_exclude", "stage", "init", "watchdog", "realtime", "journald",
    "breaking_versions", "ulimits",
}  # fmt: skip
ARCHES = {"aarch64", "amd64"}  # the only ones left since the 2025 deprecation of 32-bit
STARTUPS = {"initialize", "system", "services", "application", "once"}
BOOTS = {"auto", "manual", "manual_only"}
SLUG = re.compile(r"^[-_.A-Za-z0-9]+$")  # "URI friendly"
PORT_KEY = re.compile(r"^(\d+)/(tcp|udp)$")
WATCHDOG = re.compile(r"^(?:https?|tcp)://\[HOST\]:\[PORT:(\d+)\]")
# The option types the docs list; a trailing "?" makes an option optional.
SCHEMA_TYPE = re.compile(
    r"^(?:bool|email|url|port|device(?:\(subsystem=[a-z]+\))?"
    r"|(?:str|password)(?:\(\d*,\d*\))?|(?:int|float)(?:\(-?[\d.]*,-?[\d.]*\))?"
    r"|match\(.+\)|list\(.+\))\??$"
)
CORAL_DEVICES = [f"/dev/apex_{i}" for i in range(4)]


def option_type_accepts(element: str, value: Any) -> bool:
    """Whether a value passes a schema element, for the types this app uses."""
    element = element.removesuffix("?")
    if element.startswith(("str", "password")):
        return isinstance(value, str)
    if element.startswith("list("):
        return value in element[len("list(") : -1].split("|")
    if element.startswith("match("):
        return re.match(element[len("match(") : -1], str(value)) is not None
    raise AssertionError(f"the test does not know the schema type {element!r}")


def test_repository_yaml_has_a_name_and_only_documented_keys() -> None:
    repository = read_yaml(REPO / "repository.yaml")
    assert isinstance(repository.get("name"), str)
    assert repository["name"]
    assert set(repository) <= {"name", "url", "maintainer"}
    assert repository["url"].startswith("https://")


def test_config_has_the_required_keys_and_only_documented_ones(app_config: dict[str, Any]) -> None:
    assert set(app_config) >= REQUIRED_KEYS
    assert set(app_config) <= REQUIRED_KEYS | OPTIONAL_KEYS, set(app_config) - OPTIONAL_KEYS
    for key in ("name", "version", "slug", "description"):
        assert isinstance(app_config[key], str), f"{key} must be a string (quote the version)"
    assert SLUG.match(app_config["slug"])
    assert app_config["url"].startswith("https://")


def test_config_runs_on_the_supported_arches_at_application_startup(
    app_config: dict[str, Any],
) -> None:
    assert set(app_config["arch"]) == ARCHES
    assert app_config["startup"] in STARTUPS
    assert app_config["startup"] == "application"  # after Home Assistant, which it serves
    assert app_config["boot"] in BOOTS
    assert 10 <= app_config["timeout"] <= 300


def test_config_names_a_multi_arch_image_without_a_tag(app_config: dict[str, Any]) -> None:
    # The Supervisor pulls image:version; a locally built app would need this folder to be the
    # whole build context, and the engine lives outside it.
    image = app_config["image"]
    assert image == image.lower()
    assert ":" not in image.rsplit("/", 1)[-1]
    assert "{arch}" not in image  # the generic manifest name is preferred since 2026


def test_config_maps_the_coral_devices_and_usb(app_config: dict[str, Any]) -> None:
    assert app_config["usb"] is True
    assert app_config["udev"] is True  # the USB stick re-enumerates after its firmware upload
    assert app_config["devices"] == CORAL_DEVICES
    assert app_config.get("full_access", False) is False  # devices are mapped one by one instead


def test_config_offers_discovery_through_the_supervisor_api(app_config: dict[str, Any]) -> None:
    assert "coral_vision" in app_config["discovery"]
    assert app_config["hassio_api"] is True


def test_config_ports_are_well_formed_and_described(app_config: dict[str, Any]) -> None:
    ports = app_config["ports"]
    assert ports
    for key, host_port in ports.items():
        assert PORT_KEY.match(key), key
        assert host_port is None or 1 <= host_port <= 65535
    assert set(app_config["ports_description"]) == set(ports)
    watchdog = WATCHDOG.match(app_config["watchdog"])
    assert watchdog
    assert f"{watchdog.group(1)}/tcp" in ports
    assert app_config["watchdog"].endswith("/health")  # the one endpoint that needs no key


def test_config_options_and_schema_agree(app_config: dict[str, Any]) -> None:
    options, schema = app_config["options"], app_config["schema"]
    assert set(options) <= set(schema)
    for key, element in schema.items():
        elements = element if isinstance(element, list) else [element]
        for item in elements:
            assert isinstance(item, str)
            assert SCHEMA_TYPE.match(item), f"{key}: {item!r} is not a documented type"
        if key not in options:
            # Truly optional: a "?" and no default (a default would make it required).
            assert all(item.endswith("?") for item in elements), key
            continue
        values = options[key] if isinstance(element, list) else [options[key]]
        for value in values:
            assert option_type_accepts(elements[0], value), (key, value)
    assert schema["api_key"] == "password?"
    assert schema["log_level"].startswith("list(")


@pytest.mark.parametrize(
    ("value", "valid"),
    [("all", True), ("cpu", True), ("usb:0", True), ("usb:0,pci:1", True), ("gpu", False),
     ("usb", False), ("usb:0,", False), ("all,cpu", False)],
)  # fmt: skip
def test_config_devices_option_takes_what_the_server_takes(
    app_config: dict[str, Any], value: str, valid: bool
) -> None:
    assert option_type_accepts(app_config["schema"]["devices"], value) is valid


def test_translations_name_and_describe_every_option_and_port(app_config: dict[str, Any]) -> None:
    translations = read_yaml(APP_DIR / "translations" / "en.yaml")
    assert set(translations) <= {"configuration", "network"}
    configuration = translations["configuration"]
    assert set(configuration) == set(app_config["schema"])
    for key, text in configuration.items():
        assert set(text) <= {"name", "description", "fields"}, key
        assert text["name"].strip(), key
        assert text["description"].strip(), key
    assert {key.lower() for key in translations["network"]} == set(app_config["ports"])


def test_icon_is_a_square_png_and_logo_a_wide_one() -> None:
    with Image.open(APP_DIR / "icon.png") as icon:
        assert icon.format == "PNG"
        assert icon.width == icon.height >= 128
    with Image.open(APP_DIR / "logo.png") as logo:
        assert logo.format == "PNG"
        assert logo.width > logo.height  # the docs suggest about 250x100
        assert 200 <= logo.width <= 1000


def test_app_folder_has_the_documented_files_and_no_build_yaml() -> None:
    for name in ("config.yaml", "Dockerfile", "run.sh", "DOCS.md", "CHANGELOG.md", "README.md"):
        assert (APP_DIR / name).is_file(), name
    # build.yaml is no longer read by the 2026 builder: the Dockerfile names its base itself.
    assert not (APP_DIR / "build.yaml").exists()
    # The Supervisor searches the repository for config.yaml: only the app's may exist.
    others = [
        p for p in REPO.rglob("config.yaml") if ".envs" not in p.parts and p.parent != APP_DIR
    ]
    assert others == []


def test_version_is_the_same_everywhere(app_config: dict[str, Any]) -> None:
    manifest = json.loads((REPO / "custom_components/coral_vision/manifest.json").read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert app_config["version"] == manifest["version"] == pyproject["project"]["version"]
    changelog = (APP_DIR / "CHANGELOG.md").read_text()
    first = re.search(r"^## \[?([^\]\s]+)", changelog, re.MULTILINE)
    assert first
    assert first.group(1) == app_config["version"]


def dockerfile() -> str:
    """The app's Dockerfile."""
    return (APP_DIR / "Dockerfile").read_text()


def test_dockerfile_names_its_base_and_serves_the_configured_port(
    app_config: dict[str, Any],
) -> None:
    text = dockerfile()
    # Since Supervisor 2026.04 nothing passes BUILD_FROM: the base must be spelled out.
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE)
    assert base
    assert "BUILD_FROM" not in base.group(1)
    release = re.search(r"^ARG DEBIAN_RELEASE=(\w+)$", text, re.MULTILINE)
    assert release, "scripts/setup reads the Debian release from this line"
    assert base.group(1) == "debian:${DEBIAN_RELEASE}-slim"
    (port_key,) = app_config["ports"]
    port = port_key.split("/")[0]
    assert re.search(rf"^EXPOSE {port}$", text, re.MULTILINE)
    run = (APP_DIR / "run.sh").read_text()
    assert f"--port {port}" in run
    assert "--config /data/options.json" in run
    # No ENTRYPOINT of its own (no s6): the Supervisor's init (init: true) is PID 1.
    assert "ENTRYPOINT" not in text
    assert app_config.get("init", True) is True


def test_dockerfile_copies_only_what_exists_and_what_the_context_sends() -> None:
    sources = [
        source
        for line in re.findall(r"^COPY (.+)$", dockerfile(), re.MULTILINE)
        for source in line.split()[:-1]
    ]
    assert sources
    ignore = (APP_DIR / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for source in sources:
        assert (REPO / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is left out of the build context"


def test_requirements_are_pinned_with_hashes() -> None:
    text = (APP_DIR / "requirements.txt").read_text()
    requirements = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.MULTILINE)
    names = {name for name, _ in requirements}
    assert {"ai-edge-litert", "numpy", "pillow", "aiohttp", "zeroconf"} <= names
    entries = re.split(r"^(?=[A-Za-z])", text, flags=re.MULTILINE)[1:]
    assert len(entries) == len(requirements)
    for entry in entries:
        assert "--hash=sha256:" in entry, entry


def test_docs_cover_installation_options_and_other_hosts(app_config: dict[str, Any]) -> None:
    docs = (APP_DIR / "DOCS.md").read_text()
    for option in app_config["schema"]:
        assert f"`{option}`" in docs, option
    for topic in ("docker compose", "systemd", "/dev/apex_0", "/v1/vision/detection", "Frigate"):
        assert topic.lower() in docs.lower(), topic


def test_scripts_are_executable() -> None:
    for name in ("run.sh", "install.sh"):
        assert (APP_DIR / name).stat().st_mode & 0o111, name
    assert Path(REPO / "scripts" / "setup").stat().st_mode & 0o111
