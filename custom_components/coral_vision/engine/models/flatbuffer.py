"""A bounded reader for the parts of the TensorFlow Lite flatbuffer schema the engine uses.

The file is untrusted. Every offset is checked against the buffer, and the total work is bounded,
not only each field: flatbuffer offsets may alias, so a small file can point a million table
entries at one large shape. The reader walks every subgraph's tensors and operators the way the
interpreter will (without decoding them) and charges what they expand to against a budget
proportional to the file size, and it caps the tables it visits at the flatbuffers verifier's
limit. Only the main subgraph's inputs and outputs, the operator codes, the metadata names and
the signatures are decoded, with names cut short. A malformed or hostile file raises ModelError
and nothing else, after linear work and memory.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ModelError

FILE_IDENTIFIER = b"TFL3"
MAX_MODEL_BYTES = 512 * 1024 * 1024

# What the tables may expand to: shapes, quantization and operator indices the interpreter copies,
# and the names we decode. A real model's tables are a small part of its bytes (weights dominate).
_BUDGET_PER_BYTE = 4
_BUDGET_BASE = 4 * 1024 * 1024
_TABLE_COST = 64
# The flatbuffers verifier the interpreter runs refuses files with more tables than this.
_MAX_TABLES = 1_000_000
_MAX_IO = 1024  # inputs or outputs of the main subgraph
_MAX_RANK = 16
_MAX_NAME = 256  # bytes kept of a tensor, operator or metadata name
_MAX_DESCRIPTION = 1024
_MAX_METADATA = 1024
_MAX_SIGNATURES = 64
_MAX_SIGNATURE_TENSORS = 4096

# TensorType in the schema ai-edge-litert ships (schema_py_generated.TensorType), by value.
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
    "bfloat16",
    "int2",
    "uint4",
    "float8_e4m3fn",
    "float8_e5m2",
)

# BuiltinOperator in the same schema (schema_py_generated.BuiltinOperator), by value.
BUILTIN_OPERATORS = (
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
    "STABLEHLO_LOGISTIC",
    "STABLEHLO_ADD",
    "STABLEHLO_DIVIDE",
    "STABLEHLO_MULTIPLY",
    "STABLEHLO_MAXIMUM",
    "STABLEHLO_RESHAPE",
    "STABLEHLO_CLAMP",
    "STABLEHLO_CONCATENATE",
    "STABLEHLO_BROADCAST_IN_DIM",
    "STABLEHLO_CONVOLUTION",
    "STABLEHLO_SLICE",
    "STABLEHLO_CUSTOM_CALL",
    "STABLEHLO_REDUCE",
    "STABLEHLO_ABS",
    "STABLEHLO_AND",
    "STABLEHLO_COSINE",
    "STABLEHLO_EXPONENTIAL",
    "STABLEHLO_FLOOR",
    "STABLEHLO_LOG",
    "STABLEHLO_MINIMUM",
    "STABLEHLO_NEGATE",
    "STABLEHLO_OR",
    "STABLEHLO_POWER",
    "STABLEHLO_REMAINDER",
    "STABLEHLO_RSQRT",
    "STABLEHLO_SELECT",
    "STABLEHLO_SUBTRACT",
    "STABLEHLO_TANH",
    "STABLEHLO_SCATTER",
    "STABLEHLO_COMPARE",
    "STABLEHLO_CONVERT",
    "STABLEHLO_DYNAMIC_SLICE",
    "STABLEHLO_DYNAMIC_UPDATE_SLICE",
    "STABLEHLO_PAD",
    "STABLEHLO_IOTA",
    "STABLEHLO_DOT_GENERAL",
    "STABLEHLO_REDUCE_WINDOW",
    "STABLEHLO_SORT",
    "STABLEHLO_WHILE",
    "STABLEHLO_GATHER",
    "STABLEHLO_TRANSPOSE",
    "DILATE",
    "STABLEHLO_RNG_BIT_GENERATOR",
    "REDUCE_WINDOW",
    "STABLEHLO_COMPOSITE",
    "STABLEHLO_SHIFT_LEFT",
    "STABLEHLO_CBRT",
    "STABLEHLO_CASE",
)

CUSTOM_CODE = 32


class _Reader:
    """A buffer, a budget of the bytes its tables expand to, and a count of tables visited."""

    __slots__ = ("budget", "buf", "limit", "tables")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.limit = _BUDGET_PER_BYTE * len(buf) + _BUDGET_BASE
        self.budget = self.limit
        self.tables = 0

    def charge(self, cost: int) -> None:
        """Spend `cost` bytes of the budget; ModelError once it is gone."""
        self.budget -= cost
        if self.budget < 0:
            raise ModelError(
                f"malformed model: its tables expand to more than {self.limit} bytes, "
                f"{_BUDGET_PER_BYTE} times its size (offsets that alias one large table?)"
            )

    def visit(self, count: int = 1) -> None:
        """Count tables visited, like the flatbuffers verifier does."""
        self.tables += count
        if self.tables > _MAX_TABLES:
            raise ModelError(f"malformed model: more than {_MAX_TABLES} tables")
        self.charge(count * _TABLE_COST)


# Reads past the end raise struct.error, which parse_model turns into ModelError; positions are
# sums of unsigned offsets, so only a vtable (a signed offset back) can land before the start.
_I8 = struct.Struct("<b").unpack_from
_U16 = struct.Struct("<H").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_INTEGERS = {"b": _I8, "i": _I32, "I": _U32}


class Table:
    """A flatbuffer table at a checked position in a buffer."""

    __slots__ = ("_buf", "_pos", "_reader", "_vtable", "_vtable_size")

    def __init__(self, reader: _Reader, pos: int) -> None:
        buf = reader.buf
        self._reader = reader
        self._buf = buf
        self._pos = pos
        vtable = pos - _I32(buf, pos)[0]
        if vtable < 0:
            raise ModelError(f"malformed flatbuffer: a vtable at {vtable}, before the file")
        size = _U16(buf, vtable)[0]
        if size < 4 or size % 2 or vtable + size > len(buf):
            raise ModelError(f"malformed flatbuffer: bad vtable size at {vtable}")
        self._vtable = vtable
        self._vtable_size = size

    @property
    def pos(self) -> int:
        """Where the table starts: aliased entries share it."""
        return self._pos

    def _field(self, index: int) -> int | None:
        """The absolute position of field `index`, or None when it is absent."""
        slot = 4 + 2 * index
        if slot >= self._vtable_size:
            return None
        offset: int = _U16(self._buf, self._vtable + slot)[0]
        return self._pos + offset if offset else None

    def integer(self, index: int, kind: str, default: int = 0) -> int:
        """An integer scalar field ("b", "i" or "I"), or its schema default."""
        pos = self._field(index)
        return default if pos is None else int(_INTEGERS[kind](self._buf, pos)[0])

    def _target(self, index: int) -> int | None:
        pos = self._field(index)
        return None if pos is None else pos + int(_U32(self._buf, pos)[0])

    def table(self, index: int) -> Table | None:
        """A sub-table field."""
        target = self._target(index)
        return None if target is None else Table(self._reader, target)

    def string(self, index: int, limit: int = _MAX_NAME) -> str | None:
        """A string field, its first `limit` bytes decoded as UTF-8 with replacement."""
        span = self.vector(index, 1)
        if span is None:
            return None
        start, length = span
        kept = min(length, limit)
        self._reader.charge(_TABLE_COST + kept)
        text = self._buf[start : start + kept].decode("utf-8", "replace")
        return text + "…" if kept < length else text

    def vector(self, index: int, item_size: int) -> tuple[int, int] | None:
        """The (start, count) of a vector field, checked to lie inside the buffer."""
        target = self._target(index)
        if target is None:
            return None
        count: int = _U32(self._buf, target)[0]
        _check(self._buf, target + 4, count * item_size)
        return target + 4, count

    def length(self, index: int, item_size: int) -> int:
        """How many items a vector field holds (0 when absent), checked but not decoded."""
        span = self.vector(index, item_size)
        return 0 if span is None else span[1]

    def scalars(self, index: int, kind: str, limit: int) -> tuple[int | float, ...]:
        """A vector of at most `limit` scalars ("i", "f" or "q")."""
        span = self.vector(index, struct.calcsize("<" + kind))
        if span is None:
            return ()
        start, count = span
        if count > limit:
            raise ModelError(f"malformed model: a vector of {count} items, more than {limit}")
        self._reader.charge(_TABLE_COST + 8 * count)
        return struct.unpack_from(f"<{count}{kind}", self._buf, start)

    def tables(self, index: int) -> _Tables:
        """A vector of tables, read one entry at a time."""
        span = self.vector(index, 4)
        return _Tables(self._reader, *(span or (0, 0)))


class _Tables:
    """A vector of tables that builds a Table only for the entry asked for."""

    __slots__ = ("_count", "_reader", "_start")

    def __init__(self, reader: _Reader, start: int, count: int) -> None:
        self._reader = reader
        self._start = start
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> Table:
        slot = self._start + 4 * i
        return Table(self._reader, slot + _U32(self._reader.buf, slot)[0])


def _check(buf: bytes, pos: int, size: int) -> None:
    if pos < 0 or size < 0 or pos + size > len(buf):
        raise ModelError(
            f"malformed flatbuffer: {size} bytes at {pos} outside a {len(buf)}-byte file"
        )


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
    """An input or output of the main subgraph: shape, element type and quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    # Per-tensor quantization; None when absent, zero or per-channel (only weights are).
    scale: float | None
    zero_point: int | None


@dataclass(frozen=True, slots=True)
class Operator:
    """An operator of the main subgraph."""

    opcode_index: int


@dataclass(frozen=True, slots=True)
class Signature:
    """A signature: its key and the tensor index of each named output."""

    key: str
    subgraph: int
    outputs: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class TfliteModel:
    """What the engine reads from a .tflite file."""

    version: int
    description: str
    operator_codes: tuple[OperatorCode, ...]
    io_tensors: Mapping[int, Tensor]  # the main subgraph's inputs and outputs, by index
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: tuple[Operator, ...]
    subgraph_count: int
    metadata: tuple[str, ...]  # the names of the metadata entries
    signatures: tuple[Signature, ...]

    def operator_name(self, op: Operator) -> str:
        """The name of an operator's code."""
        return self.operator_codes[op.opcode_index].name

    def tensor(self, index: int) -> Tensor:
        """An input or output tensor by index."""
        return self.io_tensors[index]


def has_identifier(data: bytes) -> bool:
    """Whether `data` carries the TensorFlow Lite file identifier at bytes 4..8."""
    return len(data) >= 8 and data[4:8] == FILE_IDENTIFIER


def parse_model(data: bytes) -> TfliteModel:
    """Parse a .tflite flatbuffer; raise ModelError when it is not a readable model."""
    if len(data) > MAX_MODEL_BYTES:
        raise ModelError(f"{len(data)} bytes is larger than any supported model")
    if not has_identifier(data):
        raise ModelError("not a TensorFlow Lite file (no TFL3 identifier at bytes 4..8)")
    try:
        return _parse(_Reader(data))
    except ModelError:
        raise
    except struct.error as err:
        raise ModelError("malformed flatbuffer: an offset points outside the file") from err
    except Exception as err:  # untrusted bytes: MemoryError or a missed check is still a bad file
        raise ModelError(f"malformed TensorFlow Lite model: {type(err).__name__}: {err}") from err


def _parse(reader: _Reader) -> TfliteModel:
    model = Table(reader, _U32(reader.buf, 0)[0])
    reader.visit()
    codes = _operator_codes(reader, model.tables(1))
    subgraphs = model.tables(2)
    if not subgraphs:
        raise ModelError("the model has no subgraph")
    buffers = model.tables(4)
    reader.visit(len(buffers))
    for i in range(len(subgraphs)):
        reader.visit()
        _walk_subgraph(reader, subgraphs[i])
    main = subgraphs[0]
    inputs, outputs, io_tensors = _io(main)
    return TfliteModel(
        version=model.integer(0, "I"),
        description=model.string(3, _MAX_DESCRIPTION) or "",
        operator_codes=codes,
        io_tensors=io_tensors,
        inputs=inputs,
        outputs=outputs,
        operators=_operators(main, len(codes)),
        subgraph_count=len(subgraphs),
        metadata=_metadata(reader, model.tables(6), buffers),
        signatures=_signatures(reader, model.tables(7)),
    )


def _operator_codes(reader: _Reader, vector: _Tables) -> tuple[OperatorCode, ...]:
    reader.visit(len(vector))
    decoded: dict[int, OperatorCode] = {}
    codes = []
    for i in range(len(vector)):
        table = vector[i]
        code = decoded.get(table.pos)
        if code is None:
            # Older files only set the deprecated byte, newer ones set both and codes above 127
            # only fit in builtin_code: the schema's GetBuiltinCode takes the larger of the two.
            builtin = max(table.integer(3, "i"), table.integer(0, "b"))
            code = decoded[table.pos] = OperatorCode(builtin, table.string(1))
        codes.append(code)
    return tuple(codes)


def _io(graph: Table) -> tuple[tuple[int, ...], tuple[int, ...], dict[int, Tensor]]:
    """The main subgraph's input and output indices and their tensors, decoded."""
    tensors = graph.tables(0)
    inputs = tuple(int(v) for v in graph.scalars(1, "i", _MAX_IO))
    outputs = tuple(int(v) for v in graph.scalars(2, "i", _MAX_IO))
    decoded: dict[int, Tensor] = {}
    for index in (*inputs, *outputs):
        if not 0 <= index < len(tensors):
            raise ModelError(f"malformed model: input/output tensor {index} does not exist")
        if index not in decoded:
            decoded[index] = _tensor(tensors[index])
    return inputs, outputs, decoded


def _tensor(table: Table) -> Tensor:
    type_code = table.integer(1, "b")
    dtype = TENSOR_TYPES[type_code] if 0 <= type_code < len(TENSOR_TYPES) else f"type_{type_code}"
    scale: float | None = None
    zero_point: int | None = None
    quant = table.table(4)
    if quant is not None and quant.length(2, 4) == 1:
        value = float(quant.scalars(2, "f", 1)[0])
        if value != 0:
            scale = value
            zero_points = quant.scalars(3, "q", 1) if quant.length(3, 8) == 1 else ()
            zero_point = int(zero_points[0]) if zero_points else None
    rank = table.length(0, 4)
    if rank > _MAX_RANK:
        raise ModelError(f"malformed model: a tensor of rank {rank}, more than {_MAX_RANK}")
    shape = table.scalars(0, "i", _MAX_RANK)
    return Tensor(
        name=table.string(3) or "",
        shape=tuple(int(v) for v in shape),
        dtype=dtype,
        scale=scale,
        zero_point=zero_point,
    )


def _walk_subgraph(reader: _Reader, graph: Table) -> None:
    """Charge what a subgraph expands to in the interpreter, without decoding it."""
    tensors = graph.tables(0)
    reader.visit(len(tensors))
    for i in range(len(tensors)):
        reader.charge(_tensor_cost(tensors[i]))
    reader.charge(4 * (graph.length(1, 4) + graph.length(2, 4)))
    ops = graph.tables(3)
    reader.visit(len(ops))
    for i in range(len(ops)):
        reader.charge(_operator_cost(ops[i]))


def _operators(graph: Table, code_count: int) -> tuple[Operator, ...]:
    """The main subgraph's operators; one Operator object per code however many use it."""
    ops = graph.tables(3)
    by_code: dict[int, Operator] = {}
    result = []
    for i in range(len(ops)):
        index = ops[i].integer(0, "I")
        if index >= code_count:
            raise ModelError(f"malformed model: operator code {index} does not exist")
        op = by_code.get(index)
        if op is None:
            op = by_code[index] = Operator(index)
        result.append(op)
    return tuple(result)


def _tensor_cost(table: Table) -> int:
    """A tensor's shape and shape signature, and its quantization scales and zero points."""
    cost = 4 * (table.length(0, 4) + table.length(7, 4))
    quant = table.table(4)
    if quant is not None:
        cost += _TABLE_COST + 4 * quant.length(2, 4) + 8 * quant.length(3, 8)
    return cost


def _operator_cost(table: Table) -> int:
    """An operator's inputs, outputs and intermediates."""
    return 4 * (table.length(1, 4) + table.length(2, 4) + table.length(8, 4))


def _metadata(reader: _Reader, entries: _Tables, buffers: _Tables) -> tuple[str, ...]:
    if len(entries) > _MAX_METADATA:
        raise ModelError(f"malformed model: {len(entries)} metadata entries")
    reader.visit(len(entries))
    names = []
    for i in range(len(entries)):
        entry = entries[i]
        name = entry.string(0) or ""
        index = entry.integer(1, "I")
        if index >= len(buffers):
            raise ModelError(f"malformed model: metadata {name!r} points to a missing buffer")
        buffers[index].vector(0, 1)  # checks that its bytes lie inside the file
        names.append(name)
    return tuple(names)


def _signatures(reader: _Reader, vector: _Tables) -> tuple[Signature, ...]:
    if len(vector) > _MAX_SIGNATURES:
        raise ModelError(f"malformed model: {len(vector)} signatures")
    reader.visit(len(vector))
    result = []
    for i in range(len(vector)):
        table = vector[i]
        maps = table.tables(1)
        if len(maps) > _MAX_SIGNATURE_TENSORS:
            raise ModelError(f"malformed model: a signature with {len(maps)} outputs")
        reader.visit(len(maps) + table.length(0, 4))
        outputs = {}
        for j in range(len(maps)):
            entry = maps[j]
            outputs[entry.string(0) or ""] = entry.integer(1, "I")
        result.append(
            Signature(key=table.string(2) or "", subgraph=table.integer(4, "I"), outputs=outputs)
        )
    return tuple(result)
