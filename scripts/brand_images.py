"""Draw Coral Vision's icon and logo: the integration's brand images and the app's, from one drawing.

A stylised Edge TPU chip with an eye on its die: flat shapes, no text, readable at 48 px. The logo
puts the words "Coral Vision" beside it. Run with any Python that has Pillow, from the repository
root:
    .envs/oldest/bin/python scripts/brand_images.py
Everything is drawn four times larger than needed and scaled down, which smooths the edges.

Home Assistant 2026.3+ serves a custom integration's `brand/` folder itself (the brands
repository no longer takes custom integrations); the sizes follow that repository's rules: icons
256x256 and 512x512 (@2x), logos landscape with the short side 256 and 512 px, all trimmed, on a
transparent background. The dark variants keep the chip visible on Home Assistant's dark theme.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
BRAND_DIR = ROOT / "custom_components" / "coral_vision" / "brand"
APP_DIR = ROOT / "coral_vision_server"
ICON_SIZE = 256
LOGO_HEIGHT = 256
APP_ICON_SIZE = 256  # the Supervisor wants a square; its docs suggest 128, this stays sharp at 2x
APP_LOGO_HEIGHT = 100  # the app docs suggest about 250x100
SCALE = 4
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")

type RGBA = tuple[int, int, int, int]

CORAL: RGBA = (255, 111, 97, 255)
WHITE: RGBA = (255, 255, 255, 255)
SLATE: RGBA = (38, 50, 56, 255)
TRANSPARENT: RGBA = (0, 0, 0, 0)


@dataclass(frozen=True)
class Palette:
    """The colours of one theme: the eye stays coral, the chip and the words change."""

    body: RGBA
    pins: RGBA
    pupil: RGBA
    word: RGBA  # "Vision"; "Coral" is always coral


LIGHT = Palette(body=SLATE, pins=(120, 144, 156, 255), pupil=SLATE, word=SLATE)
# On a dark background a slate chip disappears: a light chip, the pupil staying dark.
DARK = Palette(
    body=(236, 239, 241, 255), pins=(176, 190, 197, 255), pupil=SLATE, word=(236, 239, 241, 255)
)


def draw_icon(size: int, palette: Palette = LIGHT) -> Image.Image:
    """The chip with three pins a side and the eye on its die, filling a `size` square."""
    big = size * SCALE
    image = Image.new("RGBA", (big, big), TRANSPARENT)
    draw = ImageDraw.Draw(image)
    inset = big * 0.13  # how far the pins stick out of the body
    body = (inset, inset, big - inset, big - inset)
    pin_wide = big * 0.085
    for centre in (0.31, 0.5, 0.69):
        middle = big * centre
        low, high = middle - pin_wide / 2, middle + pin_wide / 2
        # One bar across the whole chip per row and column: only its ends show as pins.
        draw.rounded_rectangle((low, 0, high, big), radius=pin_wide / 2, fill=palette.pins)
        draw.rounded_rectangle((0, low, big, high), radius=pin_wide / 2, fill=palette.pins)
    draw.rounded_rectangle(body, radius=big * 0.12, fill=palette.body)
    draw_eye(draw, centre=big / 2, width=big * 0.6, pupil=palette.pupil)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def draw_eye(draw: ImageDraw.ImageDraw, centre: float, width: float, pupil: RGBA) -> None:
    """An almond-shaped coral eye, a white iris, the pupil and a glint on the lens."""
    half_w, half_h = width / 2, width * 0.31
    steps = 64
    top = [
        (centre - half_w + width * t / steps, centre - half_h * (1 - (2 * t / steps - 1) ** 2))
        for t in range(steps + 1)
    ]
    bottom = [(x, 2 * centre - y) for x, y in reversed(top)]
    draw.polygon(top + bottom, fill=CORAL)
    _disc(draw, centre, centre, width * 0.22, WHITE)
    _disc(draw, centre, centre, width * 0.12, pupil)
    _disc(draw, centre + width * 0.045, centre - width * 0.045, width * 0.035, WHITE)


def _disc(draw: ImageDraw.ImageDraw, x: float, y: float, radius: float, fill: RGBA) -> None:
    """A filled circle."""
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)


def draw_logo(height: int, palette: Palette = LIGHT) -> Image.Image:
    """The icon, and "Coral" over "Vision" beside it, trimmed to what is drawn."""
    big = height * SCALE
    font = _font(round(big * 0.36))
    gap = big * 0.08
    words = [("Coral", CORAL), ("Vision", palette.word)]
    width = big + gap + max(font.getbbox(word)[2] for word, _ in words) + gap
    logo = Image.new("RGBA", (round(width), big), TRANSPARENT)
    logo.alpha_composite(draw_icon(big, palette), (0, 0))
    draw = ImageDraw.Draw(logo)
    for row, (word, colour) in enumerate(words):
        # Each line centred vertically on its half of the height ("lm": left, middle).
        draw.text((big + gap, big * (0.27 + 0.46 * row)), word, font=font, fill=colour, anchor="lm")
    return _trimmed_to_height(logo, height)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Bold when the system has it, else Pillow's own font."""
    if FONT.is_file():
        return ImageFont.truetype(str(FONT), size)
    return ImageFont.load_default(size=size)


def _trimmed_to_height(image: Image.Image, height: int) -> Image.Image:
    """Cut the empty edges off and scale to `height` (the logo's short side)."""
    box = image.getbbox()
    assert box is not None, "nothing was drawn"
    trimmed = image.crop(box)
    width = round(trimmed.width * height / trimmed.height)
    return trimmed.resize((width, height), Image.Resampling.LANCZOS)


def brand_images() -> dict[str, Image.Image]:
    """The eight files of the integration's brand folder, by name."""
    images: dict[str, Image.Image] = {}
    for prefix, palette in (("", LIGHT), ("dark_", DARK)):
        for suffix, factor in (("", 1), ("@2x", 2)):
            images[f"{prefix}icon{suffix}.png"] = draw_icon(ICON_SIZE * factor, palette)
            images[f"{prefix}logo{suffix}.png"] = draw_logo(LOGO_HEIGHT * factor, palette)
    return images


def main() -> None:
    """Write the brand folder and the app's icon and logo."""
    BRAND_DIR.mkdir(exist_ok=True)
    for name, image in brand_images().items():
        image.save(BRAND_DIR / name, optimize=True)
    draw_icon(APP_ICON_SIZE).save(APP_DIR / "icon.png", optimize=True)
    draw_logo(APP_LOGO_HEIGHT).save(APP_DIR / "logo.png", optimize=True)


if __name__ == "__main__":
    main()
