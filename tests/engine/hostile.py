"""Crafted TensorFlow Lite files and labels texts that attack the readers (tests and benchmark).

Each model is a real flatbuffer written with the ``flatbuffers`` package (installed with
ai-edge-litert) in TensorFlow Lite's schema: a tiny valid model, one image input [1, 8, 8, 3] and
one [1, 10] output, plus a hostile part. Flatbuffer offsets may alias, so a vector can point
thousands of entries at ONE large table: the file stays small while a reader that decodes every
entry does the large table's work thousands of times. Only this module's standard imports and
``flatbuffers`` are needed, so the benchmark can build the files without pytest or the engine.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import flatbuffers

UINT8 = 3
CUSTOM = 32
FULLY_CONNECTED = 9


@dataclass
class Parts:
    """What the hostile case adds to the base model; counts say how many aliases to write."""

    tensor_aliases: int = 0  # extra tensors entries, all the same table
    shape_len: int = 0  # rank of that aliased tensor
    name_len: int = 0  # bytes of its name
    scales_len: int = 0  # its quantization scales
    opcode_aliases: int = 0  # extra operator_codes entries, one custom op
    custom_len: int = 0  # bytes of that custom op's name
    operator_aliases: int = 0  # extra operators, all the same table
    operator_inputs: int = 0  # inputs of that operator
    buffer_aliases: int = 0  # extra buffers entries, all the same empty buffer
    metadata_aliases: int = 0  # metadata entries, all naming one big buffer
    metadata_len: int = 0  # bytes of that buffer
    subgraph_aliases: int = 0  # extra subgraphs entries, all the main subgraph
    output_aliases: int = 0  # extra subgraph outputs, all tensor 1
    input_shape: tuple[int, ...] = (1, 8, 8, 3)
    input_name: str = "input"
    input_type: int = UINT8
    output_type: int = UINT8
    builtin: int = FULLY_CONNECTED  # the one operator's code
    description: str = "hostile test model"
    tail: bytes = b""  # appended after the flatbuffer (a metadata zip)


def _numbers(b: flatbuffers.Builder, values: list[int], width: int = 4) -> int:
    b.StartVector(width, len(values), width)
    prepend = b.PrependInt32 if width == 4 else b.PrependInt64
    for value in reversed(values):
        prepend(value)
    return int(b.EndVector())


def _floats(b: flatbuffers.Builder, count: int) -> int:
    b.StartVector(4, count, 4)
    for _ in range(count):
        b.PrependFloat32(0.5)
    return int(b.EndVector())


def _bytes(b: flatbuffers.Builder, data: bytes) -> int:
    return int(b.CreateByteVector(data))


def _repeat(b: flatbuffers.Builder, head: list[int], offset: int, count: int) -> int:
    """A vector of `head` followed by `count` entries that all point at `offset`."""
    b.StartVector(4, len(head) + count, 4)
    for _ in range(count):
        b.PrependUOffsetTRelative(offset)
    for item in reversed(head):
        b.PrependUOffsetTRelative(item)
    return int(b.EndVector())


def _tensor(
    b: flatbuffers.Builder,
    name: str,
    shape: list[int],
    *,
    scales: int = 0,
    buffer: int = 0,
    dtype: int = UINT8,
) -> int:
    name_off = b.CreateString(name)
    shape_off = _numbers(b, shape)
    quant = None
    if scales:
        scale_vec = _floats(b, scales)
        zero_vec = _numbers(b, [0] * scales, width=8)
        b.StartObject(7)
        b.PrependUOffsetTRelativeSlot(2, scale_vec, 0)
        b.PrependUOffsetTRelativeSlot(3, zero_vec, 0)
        quant = b.EndObject()
    b.StartObject(11)
    b.PrependUOffsetTRelativeSlot(0, shape_off, 0)
    b.PrependInt8Slot(1, dtype, 0)
    b.PrependUint32Slot(2, buffer, 0)
    b.PrependUOffsetTRelativeSlot(3, name_off, 0)
    if quant is not None:
        b.PrependUOffsetTRelativeSlot(4, quant, 0)
    return int(b.EndObject())


def _operator(b: flatbuffers.Builder, opcode: int, inputs: list[int], outputs: list[int]) -> int:
    ins = _numbers(b, inputs)
    outs = _numbers(b, outputs)
    b.StartObject(14)
    b.PrependUint32Slot(0, opcode, 0)
    b.PrependUOffsetTRelativeSlot(1, ins, 0)
    b.PrependUOffsetTRelativeSlot(2, outs, 0)
    return int(b.EndObject())


def _opcode(b: flatbuffers.Builder, builtin: int, custom: str | None = None) -> int:
    custom_off = b.CreateString(custom) if custom is not None else None
    b.StartObject(4)
    b.PrependInt8Slot(0, min(builtin, 127), 0)
    if custom_off is not None:
        b.PrependUOffsetTRelativeSlot(1, custom_off, 0)
    b.PrependInt32Slot(3, builtin, 0)
    return int(b.EndObject())


def _buffer(b: flatbuffers.Builder, data: bytes | None) -> int:
    data_off = _bytes(b, data) if data else None
    b.StartObject(3)
    if data_off is not None:
        b.PrependUOffsetTRelativeSlot(0, data_off, 0)
    return int(b.EndObject())


def build(parts: Parts) -> bytes:
    """The base model with the hostile parts, as .tflite bytes."""
    b = flatbuffers.Builder(1 << 16)
    tensors = [
        _tensor(b, parts.input_name, list(parts.input_shape), dtype=parts.input_type),
        _tensor(b, "scores", [1, 10], dtype=parts.output_type),
    ]
    big = tensors[1]
    if parts.tensor_aliases:
        big = _tensor(b, "x" * parts.name_len, [1] * parts.shape_len, scales=parts.scales_len)
    tensor_vec = _repeat(b, tensors, big, parts.tensor_aliases)
    ops = [_operator(b, 0, [0], [1])]
    op_vec = ops[0]
    if parts.operator_aliases:
        op_vec = _operator(b, 0, [0] * parts.operator_inputs, [1])
    operators = _repeat(b, ops, op_vec, parts.operator_aliases)
    outputs = _numbers(b, [1] * (1 + parts.output_aliases))
    inputs = _numbers(b, [0])
    b.StartObject(6)
    b.PrependUOffsetTRelativeSlot(0, tensor_vec, 0)
    b.PrependUOffsetTRelativeSlot(1, inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, outputs, 0)
    b.PrependUOffsetTRelativeSlot(3, operators, 0)
    subgraph = b.EndObject()
    subgraphs = _repeat(b, [subgraph], subgraph, parts.subgraph_aliases)
    codes = [_opcode(b, parts.builtin)]
    custom = _opcode(b, CUSTOM, "c" * parts.custom_len) if parts.opcode_aliases else codes[0]
    opcode_vec = _repeat(b, codes, custom, parts.opcode_aliases)
    empty = _buffer(b, None)
    buffers_head = [empty]
    if parts.metadata_aliases:
        buffers_head.append(_buffer(b, b"m" * parts.metadata_len))
    buffers = _repeat(b, buffers_head, empty, parts.buffer_aliases)
    metadata = None
    if parts.metadata_aliases:
        name = b.CreateString("min_runtime_version")
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, name, 0)
        b.PrependUint32Slot(1, 1, 0)
        entry = b.EndObject()
        metadata = _repeat(b, [], entry, parts.metadata_aliases)
    description = b.CreateString(parts.description)
    b.StartObject(8)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, opcode_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(3, description, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers, 0)
    if metadata is not None:
        b.PrependUOffsetTRelativeSlot(6, metadata, 0)
    model = b.EndObject()
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output()) + parts.tail


def labels_zip(text: bytes, name: str = "labels.txt") -> bytes:
    """A metadata zip holding one labels member, as TFLite metadata appends to a model."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


# About half a megabyte each: the size the issue reports.
HALF_MB = 1 << 19


def _fit(per_alias: int, payload: int, size: int) -> int:
    return max(1, (size - payload) // per_alias)


def _model_cases(size: int) -> dict[str, Callable[[], bytes]]:
    half = size // 2
    return {
        "aliased tensor shape": lambda: build(
            Parts(tensor_aliases=_fit(4, half, size), shape_len=half // 4)
        ),
        "aliased tensor name": lambda: build(
            Parts(tensor_aliases=_fit(4, half, size), name_len=half)
        ),
        "aliased quantization": lambda: build(
            Parts(tensor_aliases=_fit(4, half, size), scales_len=half // 12)
        ),
        "aliased custom op name": lambda: build(
            Parts(opcode_aliases=_fit(4, half, size), custom_len=half)
        ),
        "aliased operator": lambda: build(
            Parts(operator_aliases=_fit(4, half, size), operator_inputs=half // 4)
        ),
        "aliased metadata": lambda: build(
            Parts(metadata_aliases=_fit(4, half, size), metadata_len=half)
        ),
        "many buffers": lambda: build(Parts(buffer_aliases=size // 4)),
        "aliased subgraphs": lambda: build(
            Parts(subgraph_aliases=_fit(4, half, size), tensor_aliases=half // 4, shape_len=1)
        ),
    }


MODEL_CASES = tuple(_model_cases(0))


def hostile_model(case: str, size: int = HALF_MB) -> bytes:
    """One hostile model case, about `size` bytes."""
    return _model_cases(size)[case]()


def hostile_models(size: int = HALF_MB) -> dict[str, bytes]:
    """Every hostile model case, each about `size` bytes."""
    return {name: make() for name, make in _model_cases(size).items()}


def hostile_labels(size: int = HALF_MB) -> dict[str, bytes]:
    """Labels files that attack the parser: backtracking, huge counts, binary data."""
    return {
        # "0 a", spaces, "b": the old Coral line pattern retries the spaces at every split.
        "spaces inside a Coral line": b"0 a" + b" " * (size - 4) + b"b",
        "one huge name": b"x" * size,
        "a name per line": b"x\n" * (size // 2),
        "binary garbage": bytes((i * 131 + 7) % 256 for i in range(size)),
        "a 5000-digit class id": b"9" * 5000 + b" cat\n",
    }


def lying_zip(inflated: int) -> bytes:
    """A metadata zip whose labels.txt claims 100 bytes but inflates to `inflated` bytes."""
    buffer = io.BytesIO()
    chunk = b"a\n" * (1 << 19)
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("labels.txt", "w") as member,
    ):
        for _ in range(inflated // len(chunk)):
            member.write(chunk)
    data = bytearray(buffer.getvalue())
    struct.pack_into("<I", data, 22, 100)  # the local header's uncompressed size
    directory = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, directory + 24, 100)  # and the central directory's
    return bytes(data)
