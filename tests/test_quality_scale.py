"""quality_scale.yaml lists every rule of Home Assistant's Integration Quality Scale, honestly.

Every rule is there with `done`, or `exempt`/`todo` and a reason; for rules a machine can judge,
the evidence is checked here. A rule the file calls `todo` runs its check as a strict xfail: the
day the check holds, the test fails until the file says `done`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from homeassistant.const import Platform
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.util.yaml import load_yaml

from .integration.test_brand import BRAND_DIR, brand_problems

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "custom_components.coral_vision"
INTEGRATION = REPO / "custom_components" / "coral_vision"
STRINGS: dict[str, Any] = json.loads((INTEGRATION / "strings.json").read_text("utf-8"))
SCALE: dict[str, Any] = load_yaml(str(INTEGRATION / "quality_scale.yaml"))  # type: ignore[assignment]

# The rules of the current scale, by tier: ALL_RULES in Home Assistant core's
# script/hassfest/quality_scale.py (commit 008538e8, with docs-triggers and docs-conditions).
RULES: dict[str, tuple[str, ...]] = {
    "bronze": (
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ),
    "silver": (
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ),
    "gold": (
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ),
    "platinum": ("async-dependency", "inject-websession", "strict-typing"),
}
ALL_RULES = frozenset(rule for tier in RULES.values() for rule in tier)


def status(rule: str) -> str:
    """The rule's status in quality_scale.yaml."""
    value = SCALE["rules"][rule]
    return str(value["status"] if isinstance(value, Mapping) else value)


def test_the_scale_has_its_54_rules() -> None:
    assert {tier: len(rules) for tier, rules in RULES.items()} == {
        "bronze": 20,
        "silver": 10,
        "gold": 21,
        "platinum": 3,
    }
    assert len(ALL_RULES) == 54


def test_every_rule_is_listed_and_no_other() -> None:
    listed = set(SCALE["rules"])
    assert sorted(ALL_RULES - listed) == [], "rules missing from quality_scale.yaml"
    assert sorted(listed - ALL_RULES) == [], "not rules of the current scale"


def scale_problems(rules: Mapping[str, Any]) -> list[str]:
    """Statuses that are not done/exempt/todo, and exempt or todo rules without a reason."""
    problems = []
    for rule, value in rules.items():
        if isinstance(value, str):
            if value != "done":
                problems.append(f"{rule}: {value!r} needs a comment (status: + comment:)")
            continue
        if not isinstance(value, Mapping) or set(value) - {"status", "comment"}:
            problems.append(f"{rule}: neither a status nor {{status, comment}}")
            continue
        if value.get("status") not in {"done", "exempt", "todo"}:
            problems.append(f"{rule}: unknown status {value.get('status')!r}")
        elif value["status"] != "done" and not str(value.get("comment") or "").strip():
            problems.append(f"{rule}: {value['status']} without a comment")
    return problems


def test_statuses_are_known_and_reasons_given() -> None:
    assert scale_problems(SCALE["rules"]) == []


def test_the_status_check_refuses_bad_entries() -> None:
    problems = scale_problems(
        {
            "brands": "todo",
            "devices": {"status": "exempt"},
            "diagnostics": {"status": "exempt", "comment": "  "},
            "discovery": {"status": "maybe", "comment": "x"},
            "dynamic-devices": {"status": "todo", "comment": "a reason"},
            "devices-2": ["done"],
        }
    )
    assert problems == [
        "brands: 'todo' needs a comment (status: + comment:)",
        "devices: exempt without a comment",
        "diagnostics: exempt without a comment",
        "discovery: unknown status 'maybe'",
        "devices-2: neither a status nor {status, comment}",
    ]


# --- the evidence for rules a machine can judge -------------------------------------------------


def integration_modules() -> Iterator[ModuleType]:
    """The Home Assistant layer's modules (the engine is not Home Assistant code)."""
    for path in sorted(INTEGRATION.glob("*.py")):
        name = PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        yield importlib.import_module(name)


def entity_classes() -> Iterator[tuple[ModuleType, type[Entity]]]:
    """Every entity class the integration defines, with its module."""
    for module in integration_modules():
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, Entity):
                yield module, cls


_MISSING = object()


def class_attr(cls: type[Entity], name: str) -> Any:
    """An `_attr_` class attribute's value (Entity's metaclass keeps most behind a property)."""
    value = getattr(cls, f"_attr_{name}", _MISSING)
    if isinstance(value, property):
        value = getattr(cls, f"__attr_{name}", _MISSING)
    return value


def has_entity_name_problems() -> list[str]:
    """Entity classes that do not set `_attr_has_entity_name = True`."""
    return [
        cls.__qualname__
        for _module, cls in entity_classes()
        if class_attr(cls, "has_entity_name") is not True
    ]


def entity_translation_problems() -> list[str]:
    """Entities named neither by a translation key in strings.json nor as the device itself."""
    problems = []
    names = STRINGS.get("entity", {})
    platforms = {platform.value for platform in Platform}
    for module, cls in entity_classes():
        platform = module.__name__.rsplit(".", 1)[1]
        if platform not in platforms:
            continue  # a base class (entity.py): its platforms' classes name the entities
        keys: list[str | None]
        if "entity_description" in inspect.get_annotations(cls):
            # Described entities: every description of the module carries the key.
            keys = [
                d.translation_key for d in vars(module).values() if isinstance(d, EntityDescription)
            ]
        elif class_attr(cls, "name") is None:
            continue  # the device's own name (the main feature)
        else:
            key = class_attr(cls, "translation_key")
            keys = [None if key is _MISSING else key]
        problems.extend(
            f"{cls.__qualname__}: {key} is not in strings.json entity.{platform}"
            for key in keys
            if key is None or key not in names.get(platform, {})
        )
    return problems


def config_flow_problems(strings: Mapping[str, Any]) -> list[str]:
    """Fields of a config, options or subentry step without a data_description."""
    flows = [("config", strings.get("config", {})), ("options", strings.get("options", {}))]
    flows += [
        (f"config_subentries.{kind}", flow)
        for kind, flow in strings.get("config_subentries", {}).items()
    ]
    problems = []
    for name, flow in flows:
        for step, texts in flow.get("step", {}).items():
            missing = set(texts.get("data", {})) - set(texts.get("data_description", {}))
            problems.extend(f"{name}.step.{step}: {field}" for field in sorted(missing))
    return problems


def parallel_updates_problems() -> list[str]:
    """Platform modules that do not set PARALLEL_UPDATES."""
    platforms = {platform.value for platform in Platform}
    return [
        module.__name__
        for module in integration_modules()
        if module.__name__.rsplit(".", 1)[1] in platforms
        and not isinstance(getattr(module, "PARALLEL_UPDATES", None), int)
    ]


def runtime_data_problems() -> list[str]:
    """Uses of hass.data for the entry's objects, and no typed runtime data."""
    problems = []
    keyed = re.compile(r"hass\.data(\[DOMAIN\]|\.(setdefault|get|pop)\(DOMAIN)")
    for path in sorted(INTEGRATION.glob("*.py")):
        source = path.read_text("utf-8")
        problems.extend(
            f"{path.name}: hass.data keyed by the domain" for _ in keyed.finditer(source)
        )
    data = importlib.import_module(f"{PACKAGE}.data")
    alias = data.CoralVisionConfigEntry.__value__
    if getattr(alias, "__args__", None) != (data.CoralVisionData,):
        problems.append("data.py: CoralVisionConfigEntry is not ConfigEntry[CoralVisionData]")
    if "entry.runtime_data = " not in (INTEGRATION / "__init__.py").read_text("utf-8"):
        problems.append("__init__.py never sets entry.runtime_data")
    return problems


def exception_problems(source: str, namespace: Mapping[str, Any], where: str) -> list[str]:
    """Home Assistant errors built with a bare message or raised without a translation key."""
    problems = []

    def is_ha_error(node: ast.expr) -> bool:
        cls = namespace.get(node.id) if isinstance(node, ast.Name) else None
        return isinstance(cls, type) and issubclass(cls, HomeAssistantError)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and is_ha_error(node.func):
            keywords = {k.arg for k in node.keywords}
            if node.args or (keywords - {"context"} and "translation_key" not in keywords):
                problems.append(
                    f"{where}:{node.lineno}: {ast.unparse(node.func)} with a bare message"
                )
        elif isinstance(node, ast.Raise) and node.exc is not None and is_ha_error(node.exc):
            problems.append(f"{where}:{node.lineno}: {ast.unparse(node.exc)} raised without a text")
    return sorted(problems, key=lambda problem: int(problem.split(":")[1]))


def exception_translation_problems() -> list[str]:
    """exception_problems over the integration, every key the errors use in strings.json."""
    problems = []
    for module in integration_modules():
        path = Path(inspect.getfile(module))
        source = path.read_text("utf-8")
        problems += exception_problems(source, vars(module), path.name)
    # The keys: tests/test_translations.py follows every translation_key to strings.json.
    return problems


def diagnostics_problems() -> list[str]:
    """Config entry and device diagnostics, redacting the API key, each tested."""
    problems = []
    diagnostics = importlib.import_module(f"{PACKAGE}.diagnostics")
    tests = (REPO / "tests" / "integration" / "test_diagnostics.py").read_text("utf-8")
    for function, helper in (
        ("async_get_config_entry_diagnostics", "get_diagnostics_for_config_entry"),
        ("async_get_device_diagnostics", "get_diagnostics_for_device"),
    ):
        if not inspect.iscoroutinefunction(getattr(diagnostics, function, None)):
            problems.append(f"diagnostics.py: no {function}")
        if f"await {helper}(" not in tests:
            problems.append(f"test_diagnostics.py never asks Home Assistant for {function}")
    if "api_key" not in diagnostics.TO_REDACT:
        problems.append("diagnostics.py: the API key is not redacted")
    return problems


def strict_typing_problems() -> list[str]:
    """mypy --strict over the integration, run by scripts/lint, every ignore narrowed to a code."""
    problems = []
    mypy = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["tool"]["mypy"]
    if mypy.get("strict") is not True:
        problems.append("pyproject.toml: mypy is not strict")
    if any(re.search(pattern, "custom_components/coral_vision") for pattern in mypy["exclude"]):
        problems.append("pyproject.toml: mypy excludes the integration")
    for override in mypy.get("overrides", []):
        modules = (
            override["module"] if isinstance(override["module"], list) else [override["module"]]
        )
        if any(m.startswith("custom_components") for m in modules):
            problems.append(f"pyproject.toml: an override loosens {modules}")
    if not re.search(r"mypy .*custom_components", (REPO / "scripts" / "lint").read_text("utf-8")):
        problems.append("scripts/lint does not run mypy on custom_components")
    for path in sorted(INTEGRATION.rglob("*.py")):
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if re.search(r"type:\s*ignore(?!\[)", line):
                problems.append(f"{path.relative_to(INTEGRATION)}:{number}: a bare type: ignore")
    return problems


def dependency_problems() -> list[str]:
    """Packages the engine imports that manifest.json does not declare."""
    manifest = json.loads((INTEGRATION / "manifest.json").read_text("utf-8"))
    declared = {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower() for r in manifest["requirements"]}
    return [f"{p} is not in requirements" for p in ("numpy", "pillow") if p not in declared]


NOISY_SENSORS = ("queue_depth", "dropped_frames", "frames_per_minute")


def disabled_by_default_problems() -> list[str]:
    """Noisy diagnostic sensors enabled by default."""
    sensor = importlib.import_module(f"{PACKAGE}.sensor")
    descriptions = {d.key: d for d in vars(sensor).values() if isinstance(d, EntityDescription)}
    return [
        f"sensor {key} is enabled by default"
        for key in NOISY_SENSORS
        if key not in descriptions or descriptions[key].entity_registry_enabled_default
    ]


# README sections the documentation rules ask for; a `done` docs rule needs its section.
README_SECTIONS = {
    "docs-installation-instructions": "## Installation",
    "docs-removal-instructions": "## Removal",
    "docs-data-update": "## How data updates",
    "docs-use-cases": "## Use cases",
    "docs-supported-devices": "## Supported devices",
    "docs-known-limitations": "## Known limitations",
    "docs-troubleshooting": "## Troubleshooting",
    "docs-examples": "### Automation examples",
}


def readme_problems(rule: str, readme: str | None = None) -> list[str]:
    """What the README (or the text given) lacks for a documentation rule."""
    if readme is None:
        readme = (REPO / "README.md").read_text("utf-8")
    headings = {line.strip() for line in readme.splitlines() if line.startswith("#")}
    if rule in README_SECTIONS:
        return [] if README_SECTIONS[rule] in headings else [f"no {README_SECTIONS[rule]!r}"]
    if rule == "docs-actions":
        services = load_yaml(str(INTEGRATION / "services.yaml")) or {}
        return [
            f"coral_vision.{s} undocumented" for s in services if f"coral_vision.{s}" not in readme
        ]
    # docs-triggers: each trigger as the automation editor words it, and a section for them.
    problems = [] if "### Device triggers" in headings else ["no '### Device triggers'"]
    for kind, text in STRINGS["device_automation"]["trigger_type"].items():
        worded = re.escape(text).replace(re.escape("{subtype}"), r"\w+")
        if not re.search(worded, readme):
            problems.append(f"the {kind} trigger ({text}) is not shown")
    return problems


def docs(rule: str) -> Callable[[], list[str]]:
    """The README check of one documentation rule."""
    return lambda: readme_problems(rule)


EVIDENCE: dict[str, Callable[[], list[str]]] = {
    "brands": lambda: brand_problems(BRAND_DIR),
    "config-flow": lambda: config_flow_problems(STRINGS),
    "dependency-transparency": dependency_problems,
    "diagnostics": diagnostics_problems,
    "entity-disabled-by-default": disabled_by_default_problems,
    "entity-translations": entity_translation_problems,
    "exception-translations": exception_translation_problems,
    "has-entity-name": has_entity_name_problems,
    "parallel-updates": parallel_updates_problems,
    "runtime-data": runtime_data_problems,
    "strict-typing": strict_typing_problems,
    **{rule: docs(rule) for rule in (*README_SECTIONS, "docs-actions", "docs-triggers")},
}


def evidence_cases() -> Iterator[Any]:
    """One case per checked rule; a rule still `todo` is a strict xfail."""
    for rule in sorted(EVIDENCE):
        marks = []
        if status(rule) == "todo":
            marks.append(
                pytest.mark.xfail(strict=True, reason=f"{rule} is todo in quality_scale.yaml")
            )
        yield pytest.param(rule, marks=marks, id=rule)


@pytest.mark.parametrize("rule", evidence_cases())
def test_the_evidence_of_a_rule_holds(rule: str) -> None:
    assert status(rule) != "exempt", f"{rule} has evidence to check: it is not exempt"
    assert EVIDENCE[rule]() == []


def test_conditions_are_exempt_because_there_are_none() -> None:
    # docs-conditions is exempt on the grounds that the integration provides no conditions.
    assert status("docs-conditions") == "exempt"
    assert not (INTEGRATION / "device_condition.py").exists()
    assert not (INTEGRATION / "conditions.yaml").exists()
    assert "condition_type" not in STRINGS.get("device_automation", {})


# --- the checks catch what they are for ----------------------------------------------------------


def test_the_config_flow_check_finds_an_undescribed_field() -> None:
    strings = {
        "config": {"step": {"user": {"data": {"host": "Host", "port": "Port"}}}},
        "config_subentries": {
            "camera": {"step": {"user": {"data": {"a": "A"}, "data_description": {"a": "x"}}}}
        },
    }
    assert config_flow_problems(strings) == [
        "config.step.user: host",
        "config.step.user: port",
    ]


def test_the_exception_check_finds_bare_messages() -> None:
    source = """
def f(err):
    raise HomeAssistantError(f"broken: {err}")
def g():
    raise ServiceValidationError
def h():
    raise Unauthorized(context=None)
def i():
    return ServiceValidationError(translation_domain="d", translation_key="k")
def j(x):
    raise ValueError(x)
"""
    from homeassistant.exceptions import ServiceValidationError, Unauthorized

    namespace = {
        "HomeAssistantError": HomeAssistantError,
        "ServiceValidationError": ServiceValidationError,
        "Unauthorized": Unauthorized,
        "ValueError": ValueError,
    }
    assert exception_problems(source, namespace, "x.py") == [
        "x.py:3: HomeAssistantError with a bare message",
        "x.py:5: ServiceValidationError raised without a text",
    ]


def test_the_readme_check_reads_headings_and_trigger_wording() -> None:
    readme = """# Coral Vision
Known limitations: many. Coral Vision sees a new person.
### Device triggers
"""
    # "Known limitations" in a sentence is no section: only a heading line counts.
    assert readme_problems("docs-known-limitations", readme) == ["no '## Known limitations'"]
    assert readme_problems("docs-triggers", readme) == [
        "the cleared trigger (Coral Vision no longer sees any {subtype}) is not shown"
    ]
    assert readme_problems("docs-actions", readme) == [
        f"coral_vision.{name} undocumented"
        for name in ("detect", "classify", "list_models", "remove_unused_models")
    ]
