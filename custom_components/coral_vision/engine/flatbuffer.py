"""A small, bounds-checked reader for the parts of the TensorFlow Lite flatbuffer schema we use.

Only what the model check needs is read: operator codes, the first subgraph's tensors, inputs,
outputs and operators, buffers' sizes and the metadata table. Every offset is checked against the
buffer, so a malformed or hostile file raises ModelError and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ModelError

FILE_IDENTIFIER = b"TFL3"

# Caps that keep a hostile file from making us allocate or loop without bound.
_MAX_VECTOR = 10_000_000
_MAX_STRING = 1 << 20

# TensorType in tensorflow/lite/schema/schema.fbs.
TENSOR_TYPES = (
    "float32",
    "float16",
    "int32",
    "uint8",
    "int64",
    "string",
    "bool",
    "int16",
    "complex64",
    "int8",
    "float64",
    "complex128",
    "uint64",
    "resource",
    "variant",
    "uint32",
    "uint16",
    "int4",
)

# BuiltinOperator in tensorflow/lite/schema/schema.fbs, by value (0..161).
BUILTIN_OPERATORS = [
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "EMBEDDING_LOOKUP",
    "FLOOR",
    "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION",
    "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC",
    "LSH_PROJECTION",
    "LSTM",
    "MAX_POOL_2D",
    "MUL",
    "RELU",
    "RELU_N1_TO_1",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RNN",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SVDF",
    "TANH",
    "CONCAT_EMBEDDINGS",
    "SKIP_GRAM",
    "CALL",
    "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE",
    "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "GATHER",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TRANSPOSE",
    "MEAN",
    "SUB",
    "DIV",
    "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP",
    "TOPK_V2",
    "SPLIT",
    "LOG_SOFTMAX",
    "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "CAST",
    "PRELU",
    "MAXIMUM",
    "ARG_MAX",
    "MINIMUM",
    "LESS",
    "NEG",
    "PADV2",
    "GREATER",
    "GREATER_EQUAL",
    "LESS_EQUAL",
    "SELECT",
    "SLICE",
    "SIN",
    "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE",
    "TILE",
    "EXPAND_DIMS",
    "EQUAL",
    "NOT_EQUAL",
    "LOG",
    "SUM",
    "SQRT",
    "RSQRT",
    "SHAPE",
    "POW",
    "ARG_MIN",
    "FAKE_QUANT",
    "REDUCE_PROD",
    "REDUCE_MAX",
    "PACK",
    "LOGICAL_OR",
    "ONE_HOT",
    "LOGICAL_AND",
    "LOGICAL_NOT",
    "UNPACK",
    "REDUCE_MIN",
    "FLOOR_DIV",
    "REDUCE_ANY",
    "SQUARE",
    "ZEROS_LIKE",
    "FILL",
    "FLOOR_MOD",
    "RANGE",
    "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU",
    "SQUARED_DIFFERENCE",
    "MIRROR_PAD",
    "ABS",
    "SPLIT_V",
    "UNIQUE",
    "CEIL",
    "REVERSE_V2",
    "ADD_N",
    "GATHER_ND",
    "COS",
    "WHERE",
    "RANK",
    "ELU",
    "REVERSE_SEQUENCE",
    "MATRIX_DIAG",
    "QUANTIZE",
    "MATRIX_SET_DIAG",
    "ROUND",
    "HARD_SWISH",
    "IF",
    "WHILE",
    "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND",
    "SELECT_V2",
    "DENSIFY",
    "SEGMENT_SUM",
    "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES",
    "CUMSUM",
    "CALL_ONCE",
    "BROADCAST_TO",
    "RFFT2D",
    "CONV_3D",
    "IMAG",
    "REAL",
    "COMPLEX_ABS",
    "HASHTABLE",
    "HASHTABLE_FIND",
    "HASHTABLE_IMPORT",
    "HASHTABLE_SIZE",
    "REDUCE_ALL",
    "CONV_3D_TRANSPOSE",
    "VAR_HANDLE",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
    "BROADCAST_ARGS",
    "RANDOM_STANDARD_NORMAL",
    "BUCKETIZE",
    "RANDOM_UNIFORM",
    "MULTINOMIAL",
    "GELU",
    "DYNAMIC_UPDATE_SLICE",
    "RELU_0_TO_1",
    "UNSORTED_SEGMENT_PROD",
    "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM",
    "ATAN2",
    "UNSORTED_SEGMENT_MIN",
    "SIGN",
    "BITCAST",
    "BITWISE_XOR",
    "RIGHT_SHIFT",
]

CUSTOM_CODE = 32


class Table:
    """A flatbuffer table at a checked position in a buffer."""

    __slots__ = ("_buf", "_pos", "_vtable", "_vtable_size")

    def __init__(self, buf: bytes, pos: int) -> None:
        self._buf = buf
        self._pos = pos
        vtable = pos - _read(buf, "<i", pos)
        self._vtable = vtable
        self._vtable_size = _read(buf, "<H", vtable)
        if self._vtable_size < 4 or self._vtable_size % 2:
            raise ModelError(f"malformed flatbuffer: bad vtable size at {vtable}")
        _check(buf, vtable, self._vtable_size)

    def _field(self, index: int) -> int | None:
        """The absolute position of field `index`, or None when it is absent."""
        slot = 4 + 2 * index
        if slot >= self._vtable_size:
            return None
        offset: int = _read(self._buf, "<H", self._vtable + slot)
        return None if offset == 0 else self._pos + offset

    def integer(self, index: int, fmt: str, default: int = 0) -> int:
        """An integer scalar field (struct format `fmt`), or its schema default."""
        pos = self._field(index)
        return default if pos is None else _read(self._buf, fmt, pos)

    def _target(self, index: int) -> int | None:
        pos = self._field(index)
        if pos is None:
            return None
        return pos + _read(self._buf, "<I", pos)

    def table(self, index: int) -> Table | None:
        """A sub-table field."""
        target = self._target(index)
        return None if target is None else Table(self._buf, target)

    def string(self, index: int) -> str | None:
        """A string field, decoded as UTF-8 with replacement."""
        target = self._target(index)
        if target is None:
            return None
        length = _read(self._buf, "<I", target)
        if length > _MAX_STRING:
            raise ModelError(f"malformed flatbuffer: string of {length} bytes")
        _check(self._buf, target + 4, length)
        return self._buf[target + 4 : target + 4 + length].decode("utf-8", "replace")

    def _vector(self, index: int, item_size: int) -> tuple[int, int] | None:
        target = self._target(index)
        if target is None:
            return None
        count = _read(self._buf, "<I", target)
        if count > _MAX_VECTOR:
            raise ModelError(f"malformed flatbuffer: vector of {count} items")
        _check(self._buf, target + 4, count * item_size)
        return target + 4, count

    def scalars(self, index: int, fmt: str) -> tuple[int | float, ...]:
        """A vector of scalars (struct format `fmt`, e.g. "i", "f", "q")."""
        size = struct.calcsize("<" + fmt)
        vector = self._vector(index, size)
        if vector is None:
            return ()
        start, count = vector
        return struct.unpack_from(f"<{count}{fmt}", self._buf, start)

    def ints(self, index: int, fmt: str = "i") -> tuple[int, ...]:
        """A vector of integers."""
        return tuple(int(v) for v in self.scalars(index, fmt))

    def byte_span(self, index: int) -> tuple[int, int] | None:
        """The (start, length) of a [ubyte] vector without copying it."""
        return self._vector(index, 1)

    def tables(self, index: int) -> list[Table]:
        """A vector of tables."""
        vector = self._vector(index, 4)
        if vector is None:
            return []
        start, count = vector
        result = []
        for i in range(count):
            slot = start + 4 * i
            result.append(Table(self._buf, slot + _read(self._buf, "<I", slot)))
        return result


def _check(buf: bytes, pos: int, size: int) -> None:
    if pos < 0 or size < 0 or pos + size > len(buf):
        raise ModelError(
            f"malformed flatbuffer: {size} bytes at {pos} outside a {len(buf)}-byte file"
        )


def _read(buf: bytes, fmt: str, pos: int) -> int:
    _check(buf, pos, struct.calcsize(fmt))
    value: int = struct.unpack_from(fmt, buf, pos)[0]
    return value


@dataclass(frozen=True, slots=True)
class OperatorCode:
    """One entry of Model.operator_codes."""

    builtin_code: int
    custom_code: str | None

    @property
    def name(self) -> str:
        """The custom op's name, or the builtin operator's name."""
        if self.builtin_code == CUSTOM_CODE:
            return self.custom_code or "CUSTOM"
        if 0 <= self.builtin_code < len(BUILTIN_OPERATORS):
            return BUILTIN_OPERATORS[self.builtin_code]
        return f"BUILTIN_{self.builtin_code}"


@dataclass(frozen=True, slots=True)
class Tensor:
    """A tensor of the main subgraph: shape, element type and quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Operator:
    """An operator of the main subgraph."""

    opcode_index: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TfliteModel:
    """What the model check reads from a .tflite file."""

    version: int
    description: str
    operator_codes: tuple[OperatorCode, ...]
    tensors: tuple[Tensor, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: tuple[Operator, ...]
    subgraph_count: int
    metadata: tuple[tuple[str, bytes], ...]

    def operator_name(self, op: Operator) -> str:
        """The name of an operator's code."""
        return self.operator_codes[op.opcode_index].name

    def tensor(self, index: int) -> Tensor:
        """A tensor by index (already checked to exist)."""
        return self.tensors[index]


def has_identifier(data: bytes) -> bool:
    """Whether `data` carries the TensorFlow Lite file identifier at bytes 4..8."""
    return len(data) >= 8 and data[4:8] == FILE_IDENTIFIER


def parse_model(data: bytes) -> TfliteModel:
    """Parse a .tflite flatbuffer; raise ModelError when it is not a readable model."""
    if not has_identifier(data):
        raise ModelError("not a TensorFlow Lite model (no TFL3 identifier at bytes 4..8)")
    try:
        return _parse(data)
    except ModelError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError, RecursionError) as err:
        # The checks above should make these unreachable; never let one escape as a crash.
        raise ModelError(f"malformed TensorFlow Lite model: {err}") from err


def _parse(data: bytes) -> TfliteModel:
    model = Table(data, _read(data, "<I", 0))
    codes = tuple(_operator_code(t) for t in model.tables(1))
    subgraphs = model.tables(2)
    if not subgraphs:
        raise ModelError("the model has no subgraph")
    graph = subgraphs[0]
    tensors = tuple(_tensor(t) for t in graph.tables(0))
    inputs = graph.ints(1)
    outputs = graph.ints(2)
    operators = tuple(_operator(t) for t in graph.tables(3))
    for index in (*inputs, *outputs):
        if not 0 <= index < len(tensors):
            raise ModelError(f"malformed model: input/output tensor {index} does not exist")
    for op in operators:
        if not 0 <= op.opcode_index < len(codes):
            raise ModelError(f"malformed model: operator code {op.opcode_index} does not exist")
    buffers = model.tables(4)
    metadata = []
    for entry in model.tables(6):
        name = entry.string(0) or ""
        index = entry.integer(1, "<I")
        if index >= len(buffers):
            raise ModelError(f"malformed model: metadata {name!r} points to a missing buffer")
        span = buffers[index].byte_span(0)
        content = b"" if span is None else data[span[0] : span[0] + span[1]]
        metadata.append((name, content))
    return TfliteModel(
        version=model.integer(0, "<I"),
        description=model.string(3) or "",
        operator_codes=codes,
        tensors=tensors,
        inputs=inputs,
        outputs=outputs,
        operators=operators,
        subgraph_count=len(subgraphs),
        metadata=tuple(metadata),
    )


def _operator_code(table: Table) -> OperatorCode:
    # Older files only set the deprecated byte, newer ones set both and codes above 127 only fit
    # in builtin_code: the schema's GetBuiltinCode takes the larger of the two.
    code = max(table.integer(3, "<i"), table.integer(0, "<b"))
    return OperatorCode(builtin_code=code, custom_code=table.string(1))


def _tensor(table: Table) -> Tensor:
    type_code = table.integer(1, "<b")
    dtype = TENSOR_TYPES[type_code] if 0 <= type_code < len(TENSOR_TYPES) else f"type_{type_code}"
    quant = table.table(4)
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    if quant is not None:
        scales = tuple(float(v) for v in quant.scalars(2, "f"))
        zero_points = quant.ints(3, "q")
    return Tensor(
        name=table.string(3) or "",
        shape=table.ints(0),
        dtype=dtype,
        scales=scales,
        zero_points=zero_points,
    )


def _operator(table: Table) -> Operator:
    return Operator(
        opcode_index=table.integer(0, "<I"),
        inputs=table.ints(1),
        outputs=table.ints(2),
    )
