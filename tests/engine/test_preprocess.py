"""Decoding photos and building model input tensors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from custom_components.coral_vision.engine.errors import ImageError
from custom_components.coral_vision.engine.models import InputSpec, Model
from custom_components.coral_vision.engine.preprocess import (
    PreparedFrame,
    decode_image,
    prepare_frame,
)
from custom_components.coral_vision.engine.results import BBox

ORIENTATION = 0x0112


def spec(dtype: type, scale: float = 0.0, zero_point: int = 0, size: int = 8) -> InputSpec:
    return InputSpec(size, size, 3, np.dtype(dtype), scale, zero_point, 0)


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (no pixel data needed to trip the guard)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_uint8_tensor_is_the_resized_pixels(
    mobilenet: Model, image_bytes: dict[str, bytes]
) -> None:
    frame = prepare_frame(image_bytes["cat.bmp"], mobilenet.input)
    assert frame.tensor.shape == (1, 224, 224, 3)
    assert frame.tensor.dtype == np.uint8
    assert frame.tensor.flags.c_contiguous
    assert frame.image_size == (512, 341)
    expected = Image.open(io.BytesIO(image_bytes["cat.bmp"])).convert("RGB")
    expected = expected.resize((224, 224), Image.Resampling.BILINEAR)
    # scale 1/128, zero point 128 is exactly "pixel values in": no change.
    np.testing.assert_array_equal(frame.tensor[0], np.asarray(expected))


def test_float_input_is_minus_one_to_one() -> None:
    data = encode(Image.new("RGB", (8, 8), (0, 255, 128)), "PNG")
    tensor = prepare_frame(data, spec(np.float32)).tensor
    assert tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0, 0, 0], [-1.0, 1.0, 0.5 / 127.5], atol=1e-6)


def test_unquantized_int8_input_is_shifted_pixels() -> None:
    data = encode(Image.new("RGB", (8, 8), (0, 255, 128)), "PNG")
    tensor = prepare_frame(data, spec(np.int8)).tensor
    assert tensor.dtype == np.int8
    assert tensor[0, 0, 0].tolist() == [-128, 127, 0]


def test_unquantized_uint8_input_is_raw_pixels() -> None:
    data = encode(Image.new("RGB", (8, 8), (0, 255, 128)), "PNG")
    assert prepare_frame(data, spec(np.uint8)).tensor[0, 0, 0].tolist() == [0, 255, 128]


def test_quantized_int8_input_uses_scale_and_zero_point() -> None:
    data = encode(Image.new("RGB", (8, 8), (0, 255, 128)), "PNG")
    tensor = prepare_frame(data, spec(np.int8, scale=1 / 128, zero_point=0)).tensor
    assert tensor[0, 0, 0].tolist() == [-128, 127, 0]


def test_gray_models_get_one_channel() -> None:
    gray = InputSpec(8, 8, 1, np.dtype(np.uint8), 0.0, 0, 0)
    data = encode(Image.new("RGB", (16, 16), (255, 255, 255)), "PNG")
    tensor = prepare_frame(data, gray).tensor
    assert tensor.shape == (1, 8, 8, 1)
    assert int(tensor.min()) == 255


def test_letterbox_pads_a_wide_image_top_and_bottom() -> None:
    data = encode(Image.new("RGB", (200, 100), (255, 255, 255)), "PNG")
    frame = prepare_frame(data, spec(np.uint8, size=100), resize="letterbox")
    assert frame.content == (0.0, 0.25, 1.0, 0.75)
    assert frame.image_size == (200, 100)
    column = frame.tensor[0, :, 50, 0]
    assert column[:25].max() == 0
    assert column[25:75].min() == 255
    assert column[75:].max() == 0


def test_to_source_for_stretch_and_letterbox() -> None:
    stretch = PreparedFrame(np.zeros((1, 1, 1, 3)), (200, 100))
    assert stretch.to_source(BBox(0.25, 0.5, 0.75, 1.0)) == BBox(50, 50, 150, 100)
    letterbox = PreparedFrame(np.zeros((1, 1, 1, 3)), (200, 100), (0.0, 0.25, 1.0, 0.75))
    assert letterbox.to_source(BBox(0.0, 0.25, 0.5, 0.5)) == BBox(0, 0, 100, 50)
    # Parts in the padding are clipped away.
    assert letterbox.to_source(BBox(0.0, 0.0, 1.0, 1.0)) == BBox(0, 0, 200, 100)


@pytest.mark.parametrize(("orientation", "top"), [(6, (255, 0, 0)), (8, (0, 0, 255))])
def test_exif_orientation_is_applied(orientation: int, top: tuple[int, int, int]) -> None:
    # Stored 200x100, left half red, right half blue; orientation 6 means "rotate 90° clockwise".
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = encode(image, exif=exif.tobytes())
    decoded = decode_image(data)
    assert decoded.size == (100, 200)
    pixel = decoded.getpixel((50, 20))
    assert isinstance(pixel, tuple)
    assert all(abs(a - b) < 40 for a, b in zip(pixel, top, strict=True))
    frame = prepare_frame(data, spec(np.uint8, size=32))
    assert frame.image_size == (100, 200)


def test_big_jpeg_is_decoded_at_reduced_scale(image_bytes: dict[str, bytes]) -> None:
    data = image_bytes["cat_1080p.jpg"]
    full = decode_image(data)
    small = decode_image(data, (300, 300))
    assert full.size == (1920, 1080)
    assert small.size[0] < 1920
    assert small.size[0] >= 300
    assert small.size[1] >= 300
    assert prepare_frame(data, spec(np.uint8, size=300)).image_size == (1920, 1080)


def test_small_target_never_upscales_the_draft() -> None:
    data = encode(Image.new("RGB", (2400, 1600), (10, 200, 30)))
    assert decode_image(data, (300, 300)).size == (600, 400)
    assert decode_image(data, (1000, 1000)).size == (2400, 1600)


def test_rgba_and_palette_images_become_rgb() -> None:
    for mode in ("RGBA", "P", "L", "CMYK"):
        data = encode(Image.new(mode, (10, 10)), "TIFF")
        assert decode_image(data).mode == "RGB"


BAD_IMAGES = {
    "zero bytes": b"",
    "not an image": b"hello, this is a text file\n" * 10,
    "corrupt": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8,
}


@pytest.mark.parametrize("data", BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
def test_bad_images_raise_image_error(data: bytes) -> None:
    with pytest.raises(ImageError):
        prepare_frame(data, spec(np.uint8))


def test_truncated_jpeg(image_bytes: dict[str, bytes]) -> None:
    data = image_bytes["parrot.jpg"]
    with pytest.raises(ImageError, match="truncated"):
        prepare_frame(data[: len(data) // 2], spec(np.uint8))


def test_truncated_bmp(image_bytes: dict[str, bytes]) -> None:
    with pytest.raises(ImageError):
        decode_image(image_bytes["cat.bmp"][:1000])


def test_decompression_bomb_error() -> None:
    with pytest.raises(ImageError, match="too large"):
        prepare_frame(png_claiming(40_000, 40_000), spec(np.uint8))


def test_decompression_bomb_warning_size_is_refused_too() -> None:
    # Between Pillow's limit and twice it, Pillow only warns; the engine refuses.
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ImageError, match="too large"):
        decode_image(png_claiming(10_000, 10_000))


def test_guard_holds_even_when_pillow_s_is_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageError, match="too large"):
        decode_image(png_claiming(10_000, 10_000))
