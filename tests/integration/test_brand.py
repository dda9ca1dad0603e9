"""Brand images: the files follow the brands repository's rules, and Home Assistant serves them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from PIL import Image
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.coral_vision.const import DOMAIN

BRAND_DIR = Path(__file__).resolve().parents[2] / "custom_components" / DOMAIN / "brand"
ICONS = {"icon.png": 256, "icon@2x.png": 512, "dark_icon.png": 256, "dark_icon@2x.png": 512}
# The logo's short side (its height: landscape) must be 128..256 px, 256..512 for @2x; the
# largest is preferred.
LOGOS = {"logo.png": 256, "logo@2x.png": 512, "dark_logo.png": 256, "dark_logo@2x.png": 512}


def brand_problems(folder: Path) -> list[str]:
    """What breaks the brands repository's image rules in `folder` (nothing: all eight are fine)."""
    problems: list[str] = []
    for name, side in {**ICONS, **LOGOS}.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        with Image.open(path) as image:
            image.load()
            if image.format != "PNG" or image.mode != "RGBA":
                problems.append(f"{name}: {image.format} {image.mode}, not an RGBA PNG")
                continue
            if name in ICONS and image.size != (side, side):
                problems.append(f"{name}: {image.size}, not {side}x{side}")
            if name in LOGOS and not (image.width > image.height == side):
                problems.append(f"{name}: {image.size}, not landscape {side} px high")
            if image.getpixel((0, 0))[3] != 0:  # type: ignore[index]
                problems.append(f"{name}: the background is not transparent")
            if image.getbbox() != (0, 0, *image.size):
                problems.append(f"{name}: not trimmed (empty edges)")
    return problems


def test_brand_folder_follows_the_rules() -> None:
    assert brand_problems(BRAND_DIR) == []


def test_the_check_finds_broken_images(tmp_path: Path) -> None:
    for name, side in ICONS.items():
        Image.new("RGBA", (side, side), (0, 0, 0, 0)).save(tmp_path / name)  # empty: untrimmed
    Image.new("RGB", (600, 256)).save(tmp_path / "logo.png")
    Image.new("RGBA", (256, 512), (255, 0, 0, 255)).save(tmp_path / "logo@2x.png")
    problems = brand_problems(tmp_path)
    assert "icon.png: not trimmed (empty edges)" in problems
    assert "logo.png: PNG RGB, not an RGBA PNG" in problems
    assert "logo@2x.png: (256, 512), not landscape 512 px high" in problems
    assert "logo@2x.png: the background is not transparent" in problems
    assert "dark_logo.png is missing" in problems


def test_icons_of_both_themes_differ() -> None:
    # The dark variant exists so the chip stays visible on the dark theme, not as a copy.
    for name in ("icon.png", "logo@2x.png"):
        assert (BRAND_DIR / name).read_bytes() != (BRAND_DIR / f"dark_{name}").read_bytes()


@pytest.mark.skipif(
    importlib.util.find_spec("homeassistant.components.brands") is None,
    reason="Home Assistant before 2026.3 has no brands proxy: the frontend asks the brands CDN",
)
@pytest.mark.parametrize("name", [*ICONS, *LOGOS])
async def test_home_assistant_serves_the_brand_folder(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, name: str
) -> None:
    assert await async_setup_component(hass, "brands", {})
    client = await hass_client()
    # placeholder=no: a missing file would otherwise be fetched from the CDN (no network here).
    response = await client.get(f"/api/brands/integration/{DOMAIN}/{name}?placeholder=no")
    assert response.status == 200
    assert response.content_type == "image/png"
    assert await response.read() == (BRAND_DIR / name).read_bytes()
