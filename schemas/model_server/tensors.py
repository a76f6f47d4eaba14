"""NumPy arrays ⇄ `TensorProto`, the payload of the TF Serving gRPC API.

Shared by the model server and its client so both sides agree on the wire format. The
functions take any message with TensorProto's field names: ours (`schemas.model_server.wire`,
in the TensorFlow-free client) and TensorFlow's own (in the model server), and they fill a
tensor in place, so a request never copies its payload from a temporary message. Arrays go
out as `tensor_content` (raw little-endian bytes: compact, no per-element encoding cost);
incoming tensors are also accepted in the typed `*_val` fields, because other clients (for
example `tf.make_tensor_proto` for small tensors) send those, and TensorFlow's rule that a
single value fills the whole shape is honoured.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from schemas.model_server.wire import DataType, TensorMessage

DTYPES: dict[int, np.dtype[np.generic]] = {
    DataType.DT_FLOAT: np.dtype(np.float32),
    DataType.DT_DOUBLE: np.dtype(np.float64),
    DataType.DT_HALF: np.dtype(np.float16),
    DataType.DT_UINT8: np.dtype(np.uint8),
    DataType.DT_INT8: np.dtype(np.int8),
    DataType.DT_UINT16: np.dtype(np.uint16),
    DataType.DT_INT16: np.dtype(np.int16),
    DataType.DT_INT32: np.dtype(np.int32),
    DataType.DT_UINT32: np.dtype(np.uint32),
    DataType.DT_INT64: np.dtype(np.int64),
    DataType.DT_UINT64: np.dtype(np.uint64),
    DataType.DT_BOOL: np.dtype(np.bool_),
}
"""TensorFlow dtype enum → NumPy dtype, for the numeric types this project exchanges."""

_VALUE_FIELD: dict[int, str] = {
    DataType.DT_FLOAT: "float_val",
    DataType.DT_DOUBLE: "double_val",
    DataType.DT_HALF: "half_val",
    DataType.DT_UINT8: "int_val",
    DataType.DT_INT8: "int_val",
    DataType.DT_UINT16: "int_val",
    DataType.DT_INT16: "int_val",
    DataType.DT_INT32: "int_val",
    DataType.DT_UINT32: "uint32_val",
    DataType.DT_INT64: "int64_val",
    DataType.DT_UINT64: "uint64_val",
    DataType.DT_BOOL: "bool_val",
}


class TensorError(ValueError):
    """A tensor that cannot be decoded (unsupported dtype, size not matching its shape)."""


def dtype_name(dtype_enum: int) -> str:
    """`DT_UINT8`-style name of a TensorFlow dtype enum, for error messages."""
    try:
        return DataType(dtype_enum).name
    except ValueError:
        return f"dtype {dtype_enum}"


def fill_tensor(proto: TensorMessage, array: npt.NDArray[np.generic]) -> None:
    """Write `array` into the empty tensor `proto` (dtype, shape, raw `tensor_content`)."""
    native = array.dtype.newbyteorder("=")
    dtype_enum = next((k for k, v in DTYPES.items() if v == native), None)
    if dtype_enum is None:
        raise TensorError(f"unsupported dtype {array.dtype}")
    proto.dtype = dtype_enum
    for size in array.shape:
        proto.tensor_shape.dim.add(size=int(size))
    little_endian = array.dtype.newbyteorder("<")
    proto.tensor_content = np.ascontiguousarray(array, dtype=little_endian).tobytes()


def shape_of(proto: TensorMessage) -> tuple[int, ...]:
    """The shape a `TensorProto` declares (an unknown rank is rejected)."""
    if proto.tensor_shape.unknown_rank:
        raise TensorError("tensor shape has unknown rank")
    return tuple(int(d.size) for d in proto.tensor_shape.dim)


def declared_bytes(proto: TensorMessage) -> int:
    """Bytes the decoded array of `proto` would take, from its declared shape and dtype
    alone (exact Python integers, so no overflow): checked before anything is allocated,
    since a few bytes of request may declare gigabytes (one value fills the whole shape)."""
    dtype = DTYPES.get(proto.dtype)
    if dtype is None:
        raise TensorError(f"unsupported dtype {dtype_name(proto.dtype)}")
    count = 1
    for d in shape_of(proto):
        count *= max(d, 0)
    return count * dtype.itemsize


def from_tensor_proto(proto: TensorMessage) -> npt.NDArray[np.generic]:
    """Decode a `TensorProto` into a new array; raises TensorError when it is malformed."""
    dtype = DTYPES.get(proto.dtype)
    if dtype is None:
        raise TensorError(f"unsupported dtype {dtype_name(proto.dtype)}")
    shape = shape_of(proto)
    if any(d < 0 for d in shape):
        raise TensorError(f"negative dimension in shape {shape}")
    count = int(np.prod(shape, dtype=np.int64))
    if proto.tensor_content:
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise TensorError(
                f"tensor_content has {len(proto.tensor_content)} bytes, shape {shape} of "
                f"{dtype} needs {count * dtype.itemsize}"
            )
        flat = np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype)
        return flat.reshape(shape)
    values = getattr(proto, _VALUE_FIELD[proto.dtype])
    if proto.dtype == DataType.DT_HALF:
        typed = np.array(values, dtype=np.uint16).view(np.float16)
    else:
        typed = np.array(values, dtype=dtype)
    if typed.size == count:
        return typed.reshape(shape)
    if typed.size == 1 or (typed.size == 0 and count == 0):
        return np.full(shape, typed[0] if typed.size else 0, dtype=dtype)
    raise TensorError(f"{typed.size} values given for shape {shape}")
