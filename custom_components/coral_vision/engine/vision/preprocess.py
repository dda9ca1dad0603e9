"""Turn encoded image bytes into the input tensor a model takes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from ..errors import ImageError
from ..models.model import InputSpec, ResizeMode
from ..results import BBox
from .image_guard import MAX_IMAGE_BYTES, check_structure, orientation

# A cap on decoded pixels (checked from the header, before any pixel is decoded), well below
# Pillow's bomb guard.
MAX_IMAGE_PIXELS = 40_000_000

# Pillow's own default; used when something in the process switched Pillow's guard off.
_DEFAULT_MAX_PIXELS = 89_478_485
# The only formats decoded: Pillow would also open EPS (through Ghostscript), TIFF, PSD and more.
_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")
_FORMAT_NAMES = "JPEG, PNG, BMP, GIF or WebP"
# EXIF orientations 5..8 swap width and height.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# What turns an image with each EXIF orientation upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class PreparedFrame:
    """A model-ready tensor and how its coordinates map back to the source image."""

    tensor: npt.NDArray[Any]
    image_size: tuple[int, int]
    # The part of the model input the image covers, normalized (xmin, ymin, xmax, ymax);
    # the rest is letterbox padding.
    content: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    resize: ResizeMode = "stretch"

    def to_source(self, box: BBox) -> BBox:
        """Map a box in normalized model-input coordinates to source pixels, clipped."""
        x0, y0, x1, y1 = self.content
        width, height = self.image_size
        sx, sy = width / (x1 - x0), height / (y1 - y0)
        return BBox(
            (box.xmin - x0) * sx, (box.ymin - y0) * sy, (box.xmax - x0) * sx, (box.ymax - y0) * sy
        ).clip(width, height)

    def to_source_array(self, boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """`to_source` for an (N, 4) array of normalized (xmin, ymin, xmax, ymax) boxes."""
        x0, y0, x1, y1 = self.content
        width, height = self.image_size
        scale = np.array([width / (x1 - x0), height / (y1 - y0)] * 2, np.float32)
        mapped = (boxes - np.array([x0, y0, x0, y0], np.float32)) * scale
        limit = np.array([width, height, width, height], np.float32)
        return np.clip(mapped, 0.0, limit).astype(np.float32, copy=False)


def decode_image(data: bytes, target: tuple[int, int] | None = None) -> Image.Image:
    """Decode to RGB, upright per EXIF; JPEGs bigger than target decode at a reduced scale."""
    return _decode(data, target)[0]


def prepare_frame(
    data: bytes, spec: InputSpec, *, resize: ResizeMode | None = None
) -> PreparedFrame:
    """Build the model input for an encoded image (pure; safe to run in a thread pool).

    `resize` overrides the model's own choice (`spec.resize`: letterbox for YOLO, else stretch).
    """
    resize = resize or spec.resize
    image, source_size = _decode(data, (spec.width, spec.height))
    if spec.channels == 1:
        image = image.convert("L")
    content = (0.0, 0.0, 1.0, 1.0)
    if resize == "letterbox":
        image, content = _letterbox(image, spec.width, spec.height)
    else:
        image = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8).reshape(spec.height, spec.width, spec.channels)
    tensor = np.ascontiguousarray(_quantize(pixels, spec)[np.newaxis])
    return PreparedFrame(tensor=tensor, image_size=source_size, content=content, resize=resize)


def _decode(data: bytes, target: tuple[int, int] | None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode to RGB and report the source size after EXIF orientation."""
    _check_bytes(data)
    check_structure(data)
    try:
        image: Image.Image = Image.open(io.BytesIO(data), formats=_FORMATS)
        # The header's size, before any pixel is decoded; a GIF's first frame is counted too.
        width, height = image.size
        _check_pixels(width, height)
        if target is not None and image.format == "JPEG":
            swap = orientation(image.info) in _TRANSPOSING_ORIENTATIONS
            image.draft("RGB", (target[1], target[0]) if swap else target)
        # Only the first frame of an animation is decoded.
        image.load()
        # A PNG's EXIF may follow its pixels, so the orientation is read once they are loaded.
        turned = orientation(image.info)
        if turned in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
        # One full-size copy at a time: convert first, then turn upright, dropping each source.
        if image.mode != "RGB":
            image = image.convert("RGB")
        upright = _UPRIGHT.get(turned)
        rgb = image.transpose(upright) if upright is not None else image
    except UnidentifiedImageError as err:
        raise ImageError(f"not a {_FORMAT_NAMES} image (or a corrupt one)") from err
    except Image.DecompressionBombError as err:
        raise ImageError(f"the image is too large (decompression bomb guard): {err}") from err
    except ImageError:
        raise
    except Exception as err:
        # Corrupt files make Pillow's plugins raise almost anything; all of it means "bad image".
        raise ImageError(f"cannot decode the image: {type(err).__name__}: {err}") from err
    return rgb, (width, height)


def _check_bytes(data: bytes) -> None:
    if not data:
        raise ImageError("the image is empty (0 bytes)")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(
            f"the image is too large: {len(data)} bytes exceeds {MAX_IMAGE_BYTES} "
            f"({MAX_IMAGE_BYTES // 2**20} MiB)"
        )


def _check_pixels(width: int, height: int) -> None:
    # Pillow's own guard counts too when something in the process lowered it.
    limit = min(MAX_IMAGE_PIXELS, Image.MAX_IMAGE_PIXELS or _DEFAULT_MAX_PIXELS)
    if width * height > limit:
        raise ImageError(
            f"the image is too large: {width}x{height} pixels exceeds {limit} "
            f"({limit / 1e6:g} megapixels)"
        )


def _letterbox(
    image: Image.Image, width: int, height: int
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """Scale the image to fit, centred on black bars; also return the region it covers."""
    scale = min(width / image.width, height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new(image.mode, (width, height))
    left, top = (width - inner[0]) // 2, (height - inner[1]) // 2
    canvas.paste(image.resize(inner, Image.Resampling.BILINEAR), (left, top))
    content = (left / width, top / height, (left + inner[0]) / width, (top + inner[1]) / height)
    return canvas, content


def _quantize(pixels: npt.NDArray[np.uint8], spec: InputSpec) -> npt.NDArray[Any]:
    """Pixels 0..255 as the model's input type, its real values in [-1, 1] or [0, 1]."""
    unit = spec.pixels == "unit"
    if spec.dtype == np.float32:
        if unit:
            return pixels.astype(np.float32) / np.float32(255.0)
        return (pixels.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)
    info = np.iinfo(spec.dtype)
    if not spec.scale:
        # Unquantized integer input wants raw pixels (shifted into range for int8).
        return (pixels.astype(np.int16) + info.min).astype(spec.dtype)
    # A lookup table keeps this one pass over the pixels whatever the quantization.
    levels = np.arange(256, dtype=np.float64)
    real = levels / 255.0 if unit else (levels - 128.0) / 128.0
    table = np.clip(np.round(real / spec.scale + spec.zero_point), info.min, info.max)
    quantized: npt.NDArray[Any] = table.astype(spec.dtype)[pixels]
    return quantized
