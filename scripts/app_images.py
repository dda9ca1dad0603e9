"""Draw the Home Assistant app's icon.png and logo.png: a stylised Edge TPU chip with an eye.

Run with any Python that has Pillow, from the repository root:
    .envs/oldest/bin/python scripts/app_images.py
The images are drawn from shapes only (no artwork, no font file beyond Pillow's own), four times
larger than needed and scaled down, which smooths the edges.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

APP_DIR = Path(__file__).resolve().parent.parent / "coral_vision_server"
ICON_SIZE = 256  # the Supervisor wants a square; its docs suggest 128, this stays sharp at 2x
LOGO_SIZE = (250, 100)  # the size the app docs recommend
SCALE = 4

CORAL = (255, 111, 97, 255)
CHIP = (38, 50, 56, 255)
PIN = (144, 164, 174, 255)
WHITE = (255, 255, 255, 255)
TRANSPARENT = (0, 0, 0, 0)


def draw_chip(size: int) -> Image.Image:
    """A square chip with pins on every side and an eye on its die, `size` pixels wide."""
    big = size * SCALE
    image = Image.new("RGBA", (big, big), TRANSPARENT)
    draw = ImageDraw.Draw(image)
    body = big * 0.16, big * 0.16, big * 0.84, big * 0.84
    pin_long, pin_wide = big * 0.12, big * 0.05
    for i in range(4):
        offset = big * (0.30 + 0.13 * i)
        draw.rounded_rectangle(
            (offset, body[1] - pin_long, offset + pin_wide, body[3] + pin_long),
            radius=pin_wide / 2,
            fill=PIN,
        )
        draw.rounded_rectangle(
            (body[0] - pin_long, offset, body[2] + pin_long, offset + pin_wide),
            radius=pin_wide / 2,
            fill=PIN,
        )
    draw.rounded_rectangle(body, radius=big * 0.08, fill=CHIP)
    draw_eye(draw, center=big / 2, width=big * 0.52)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def draw_eye(draw: ImageDraw.ImageDraw, center: float, width: float) -> None:
    """An almond-shaped eye in coral with a white iris and a chip-coloured pupil."""
    half_w, half_h = width / 2, width * 0.30
    steps = 48
    top = [
        (center - half_w + width * t / steps, center - half_h * (1 - (2 * t / steps - 1) ** 2))
        for t in range(steps + 1)
    ]
    bottom = [(x, 2 * center - y) for x, y in reversed(top)]
    draw.polygon(top + bottom, fill=CORAL)
    iris = width * 0.21
    draw.ellipse((center - iris, center - iris, center + iris, center + iris), fill=WHITE)
    pupil = iris * 0.5
    draw.ellipse((center - pupil, center - pupil, center + pupil, center + pupil), fill=CHIP)


def draw_logo() -> Image.Image:
    """The chip on the left and the name beside it."""
    height = LOGO_SIZE[1]
    logo = Image.new("RGBA", LOGO_SIZE, TRANSPARENT)
    logo.alpha_composite(draw_chip(height), (0, 0))
    draw = ImageDraw.Draw(logo)
    font = ImageFont.load_default(size=26)
    draw.text((height + 4, height * 0.22), "Coral", font=font, fill=CORAL)
    draw.text((height + 4, height * 0.52), "Vision", font=font, fill=CHIP)
    return logo


def main() -> None:
    """Write both images into the app folder."""
    draw_chip(ICON_SIZE).save(APP_DIR / "icon.png", optimize=True)
    draw_logo().save(APP_DIR / "logo.png", optimize=True)


if __name__ == "__main__":
    main()
