"""Decoding photos and building model input tensors."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image, ImageOps, PngImagePlugin

from custom_components.coral_vision.engine.errors import ImageError
from custom_components.coral_vision.engine.models.model import InputSpec, Model
from custom_components.coral_vision.engine.results import BBox
from custom_components.coral_vision.engine.vision.preprocess import (
    MAX_IMAGE_BYTES,
    PreparedFrame,
    decode_image,
    prepare_frame,
)

ORIENTATION = 0x0112
REPO = Path(__file__).resolve().parents[2]


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
    for mode, fmt in (("RGBA", "PNG"), ("P", "GIF"), ("L", "BMP"), ("CMYK", "JPEG")):
        data = encode(Image.new(mode, (10, 10)), fmt)
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


# -- hostile and unsupported images ------------------------------------------------------------


def solid_png(width: int, height: int) -> bytes:
    """A single-colour grey PNG, compressed row by row (never held decoded in memory)."""
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte, then the pixels
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + IEND


def chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


IEND = chunk(b"IEND", b"")


def png_with(*chunks: bytes) -> bytes:
    """A valid 8x8 PNG with extra chunks before its pixels."""
    data = encode(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG")
    return data[:33] + b"".join(chunks) + data[33:]


def exif_bomb(entries: int, size: int) -> bytes:
    """A TIFF block whose every first-directory entry points at almost all of the block."""
    table = b"".join(struct.pack("<HHII", 0x9000 + i, 7, size - 1, 1) for i in range(entries))
    block = b"II*\0" + struct.pack("<IH", 8, entries) + table + b"\0\0\0\0"
    return block.ljust(size, b"\0")


def gif_with_comment(size: int) -> bytes:
    """A 10x10 GIF with a comment of `size` bytes before its image."""
    data = encode(Image.new("P", (10, 10)), "GIF")
    start = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    comment = b"!\xfe" + (b"\xff" + b"c" * 255) * (size // 255) + b"\0"
    return data[:start] + comment + data[start:]


def gif_with_big_frame() -> bytes:
    """A GIF whose logical screen is 10x10 but whose first frame is 8000x6000."""
    data = bytearray(encode(Image.new("P", (8000, 6000)), "GIF"))
    data[6:10] = struct.pack("<HH", 10, 10)
    return bytes(data)


def jpeg_with_markers(count: int) -> bytes:
    """A valid JPEG with `count` empty APP3 segments before its frame."""
    data = encode(Image.new("RGB", (10, 10)))
    return data[:2] + b"\xff\xe3\x00\x02" * count + data[2:]


def rle_bmp(side: int) -> bytes:
    """An 8-bit RLE bitmap of one-pixel runs (Pillow writes no RLE itself)."""
    pixels = (b"\x01\x05" * side + b"\x00\x00") * side + b"\x00\x01"
    palette = b"\0\0\0\0" * 256
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 0, 0, 256, 0)
    offset = 14 + len(info) + len(palette)
    return (
        b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels
    )


HOSTILE = {
    # 9400x9400 single colour: 86 KB that decode to 88 megapixels (+420 MiB, 2.8 s before).
    "86 KB PNG of 88 megapixels": lambda: solid_png(9400, 9400),
    "GIF with a small screen and a big frame": gif_with_big_frame,
    # Pillow inflates every iCCP chunk to 1 MB: 8 s of CPU before.
    "PNG with 3000 colour profiles": lambda: png_with(
        *[chunk(b"iCCP", b"p\0\0" + zlib.compress(b"\0" * 1_000_000, 9))] * 3000
    ),
    "PNG with 2000 compressed text chunks": lambda: png_with(
        *[chunk(b"zTXt", b"k\0\0" + zlib.compress(b"a" * 1_000_000, 9))] * 2000
    ),
    "PNG with a million empty chunks": lambda: png_with(chunk(b"teSt", b"") * 1_000_000),
    # Each EXIF entry is copied by Pillow: a 60 KB JPEG cost +280 MiB before.
    "JPEG with an EXIF bomb": lambda: encode(
        Image.new("RGB", (10, 10)), exif=b"Exif\0\0" + exif_bomb(4900, 60_000)
    ),
    "PNG with an EXIF bomb": lambda: png_with(chunk(b"eXIf", exif_bomb(2000, 300_000))),
    "JPEG with a million markers": lambda: jpeg_with_markers(1_000_000),
    # Pillow joins comment blocks in quadratic time.
    "GIF with a 4 MB comment": lambda: gif_with_comment(4_000_000),
}


@pytest.mark.parametrize("make", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_images_are_refused_cheaply(make: Callable[[], bytes]) -> None:
    data = make()
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ImageError, match=r"too large|more than|EXIF"):
            prepare_frame(data, spec(np.uint8))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Refused from the headers: generous bounds only a regression can reach.
    assert peak < 16 * 2**20
    assert time.monotonic() - started < 2.0


_CHILD = """
import resource, sys, types
sys.path.insert(0, sys.argv[1])
package = types.ModuleType("custom_components.coral_vision")
package.__path__ = [sys.argv[1] + "/custom_components/coral_vision"]
sys.modules["custom_components.coral_vision"] = package
import numpy as np
from custom_components.coral_vision.engine.errors import ImageError
from custom_components.coral_vision.engine.models.model import InputSpec
from custom_components.coral_vision.engine.vision.preprocess import prepare_frame
data = open(sys.argv[2], "rb").read()
spec = InputSpec(300, 300, 3, np.dtype(np.uint8), 0.0078125, 128, 0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    prepare_frame(data, spec)
    outcome = "decoded"
except ImageError as err:
    outcome = str(err)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown // 1024, outcome)
"""


def test_a_9400_pixel_square_png_is_refused_without_decoding(tmp_path: Path) -> None:
    # Pillow's pixels live outside tracemalloc's view: a fresh process's peak RSS tells.
    image = tmp_path / "solid.png"
    image.write_bytes(solid_png(9400, 9400))
    assert image.stat().st_size < 120_000
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(REPO), str(image)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    grown_mib, outcome = done.stdout.split(" ", 1)
    assert "too large: 9400x9400 pixels" in outcome
    assert int(grown_mib) < 64, "decoding 88 megapixels costs 420 MiB"


def test_the_byte_cap_holds_before_decoding(image_bytes: dict[str, bytes]) -> None:
    padded = image_bytes["parrot.jpg"].ljust(MAX_IMAGE_BYTES + 1, b"\0")
    with pytest.raises(ImageError, match=f"too large: {MAX_IMAGE_BYTES + 1} bytes"):
        prepare_frame(padded, spec(np.uint8))
    assert decode_image(image_bytes["parrot.jpg"].ljust(MAX_IMAGE_BYTES, b"\0")).size


def eps() -> bytes:
    """A tiny Encapsulated PostScript file (what Pillow hands to Ghostscript)."""
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\n"
        b"0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n"
    )


OTHER_FORMATS = {
    "EPS": eps,
    **{
        fmt: (lambda fmt=fmt: encode(Image.new("RGB", (10, 10), (9, 9, 9)), fmt))
        for fmt in ("TIFF", "PPM", "ICO", "TGA", "PCX", "SGI")
    },
}


@pytest.mark.parametrize("make", OTHER_FORMATS.values(), ids=OTHER_FORMATS.keys())
def test_only_jpeg_png_bmp_gif_and_webp_are_decoded(
    make: Callable[[], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    ghostscript: list[object] = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: ghostscript.append(a))
    with pytest.raises(ImageError, match="not a JPEG, PNG, BMP, GIF or WebP image"):
        prepare_frame(make(), spec(np.uint8))
    assert not ghostscript, "EPS must never reach Ghostscript"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF", "WEBP"])
def test_allowed_formats_decode_real_photos(fmt: str, image_bytes: dict[str, bytes]) -> None:
    for name in ("parrot.jpg", "grace_hopper.bmp", "cat_720p.jpg"):
        photo = Image.open(io.BytesIO(image_bytes[name])).convert("RGB")
        data = encode(photo.convert("P") if fmt == "GIF" else photo, fmt)
        decoded = decode_image(data)
        assert decoded.mode == "RGB"
        assert decoded.size == photo.size
        frame = prepare_frame(data, spec(np.uint8, size=224))
        assert frame.image_size == photo.size
        assert frame.tensor.std() > 10, "a real photo, not a blank"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_decode_their_first_frame_only(fmt: str) -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    decoded = decode_image(data)
    assert decoded.size == (64, 48)
    pixel = decoded.getpixel((10, 10))
    assert isinstance(pixel, tuple)
    assert pixel[0] > 200
    assert pixel[2] < 50


def test_every_shared_photo_decodes_like_pillow(image_bytes: dict[str, bytes]) -> None:
    for name, data in image_bytes.items():
        expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        decoded = decode_image(data)
        assert decoded.size == expected.size, name
        assert np.array_equal(np.asarray(decoded), np.asarray(expected)), name


def test_xmp_and_raw_profile_orientations_are_applied() -> None:
    image = Image.new("RGB", (20, 10))
    xmp = PngImagePlugin.PngInfo()
    xmp.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta tiff:Orientation="6"/>')
    assert decode_image(encode(image, "PNG", pnginfo=xmp)).size == (10, 20)
    exif = Image.Exif()
    exif[ORIENTATION] = 8
    raw = PngImagePlugin.PngInfo()
    raw.add_text("Raw profile type exif", "\nexif\n  40\n" + exif.tobytes()[6:].hex())
    assert decode_image(encode(image, "PNG", pnginfo=raw)).size == (10, 20)
    broken = PngImagePlugin.PngInfo()
    broken.add_text("Raw profile type exif", "\nexif\n  4\nnot hex")
    assert decode_image(encode(image, "PNG", pnginfo=broken)).size == (20, 10)


def test_large_but_honest_images_pass_the_structure_checks() -> None:
    # Big RLE bitmaps are refused (Pillow decodes them in Python); small ones decode.
    rle = rle_bmp(64)
    assert decode_image(rle).size == (64, 64)
    big_rle = rle.ljust(5 * 2**20, b"\0")
    with pytest.raises(ImageError, match="RLE"):
        decode_image(big_rle)
    # A few markers, comments and text chunks are fine.
    assert decode_image(jpeg_with_markers(100)).size == (10, 10)
    assert decode_image(gif_with_comment(100_000)).size == (10, 10)
    assert decode_image(png_with(chunk(b"zTXt", b"k\0\0" + zlib.compress(b"a" * 1000)))).size


def progressive_jpeg(extra_scans: int) -> bytes:
    """A real progressive JPEG with its last scan repeated `extra_scans` times."""
    photo = Image.new("RGB", (64, 64), (90, 120, 150))
    data = encode(photo, progressive=True)
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * extra_scans + data[-2:]


def test_jpeg_structure_limits() -> None:
    assert decode_image(progressive_jpeg(20)).size == (64, 64)
    with pytest.raises(ImageError, match="more than 100 scans"):
        decode_image(progressive_jpeg(100))
    plain = encode(Image.new("RGB", (10, 10)))
    with pytest.raises(ImageError, match="stray bytes"):
        decode_image(plain[:2] + b"\x00" * 70_000 + plain[2:])
    mpf = b"\xff\xe2" + struct.pack(">H", 2 + 4 + 60_000) + b"MPF\0" + exif_bomb(4900, 60_000)
    with pytest.raises(ImageError, match="EXIF entries point at"):
        decode_image(plain[:2] + mpf + plain[2:])
    # Headers cut short are left for Pillow to refuse.
    for cut in (b"\xff\xd8", b"\xff\xd8junk", b"\xff\xd8\xff\xff", b"\xff\xd8\xff\xe0\x00"):
        with pytest.raises(ImageError, match=r"cannot|not a"):
            decode_image(cut)


def test_exif_without_an_orientation_or_in_no_known_order() -> None:
    image = Image.new("RGB", (20, 10))
    exif = Image.Exif()
    exif[0x010F] = "camera maker"
    assert decode_image(encode(image, exif=exif.tobytes())).size == (20, 10)
    # Not a TIFF block, and one whose directory lies beyond its end: both read as upright.
    # (PNG: Pillow's JPEG reader would parse, and warn about, the EXIF itself.)
    for broken in (b"XX*\0junk", b"II*\0\xff\xff\xff\x00"):
        assert decode_image(encode(image, "PNG", exif=broken)).size == (20, 10)
    big_endian = b"MM\0*" + struct.pack(">IH", 8, 1)
    big_endian += struct.pack(">HHIHH", ORIENTATION, 3, 1, 6, 0) + b"\0\0\0\0"
    assert decode_image(encode(image, "PNG", exif=big_endian)).size == (10, 20)
