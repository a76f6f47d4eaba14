"""NumPy arrays ⇄ TensorFlow `TensorProto`, the payload of the TF Serving gRPC API.

Shared by the model server and its client so both sides agree on the wire format. Arrays go
out as `tensor_content` (raw little-endian bytes: compact, no per-element encoding cost);
incoming tensors are also accepted in the typed `*_val` fields, because other clients (for
example `tf.make_tensor_proto` for small tensors) send those, and TensorFlow's rule that a
single value fills the whole shape is honoured.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

DTYPES: dict[int, np.dtype[np.generic]] = {
    types_pb2.DT_FLOAT: np.dtype(np.float32),
    types_pb2.DT_DOUBLE: np.dtype(np.float64),
    types_pb2.DT_HALF: np.dtype(np.float16),
    types_pb2.DT_UINT8: np.dtype(np.uint8),
    types_pb2.DT_INT8: np.dtype(np.int8),
    types_pb2.DT_UINT16: np.dtype(np.uint16),
    types_pb2.DT_INT16: np.dtype(np.int16),
    types_pb2.DT_INT32: np.dtype(np.int32),
    types_pb2.DT_UINT32: np.dtype(np.uint32),
    types_pb2.DT_INT64: np.dtype(np.int64),
    types_pb2.DT_UINT64: np.dtype(np.uint64),
    types_pb2.DT_BOOL: np.dtype(np.bool_),
}
"""TensorFlow dtype enum → NumPy dtype, for the numeric types this project exchanges."""

_VALUE_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
}


class TensorError(ValueError):
    """A tensor that cannot be decoded (unsupported dtype, size not matching its shape)."""


def dtype_name(dtype_enum: int) -> str:
    """`DT_UINT8`-style name of a TensorFlow dtype enum, for error messages."""
    return str(types_pb2.DataType.Name(dtype_enum))  # type: ignore[arg-type]


def to_tensor_proto(array: npt.NDArray[np.generic]) -> tensor_pb2.TensorProto:
    """Encode an array as a `TensorProto` with raw `tensor_content`."""
    dtype_enum = next((k for k, v in DTYPES.items() if v == array.dtype), None)
    if dtype_enum is None:
        raise TensorError(f"unsupported dtype {array.dtype}")
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]
    )
    content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return tensor_pb2.TensorProto(dtype=dtype_enum, tensor_shape=shape, tensor_content=content)


def shape_of(proto: tensor_pb2.TensorProto) -> tuple[int, ...]:
    """The shape a `TensorProto` declares (an unknown rank is rejected)."""
    if proto.tensor_shape.unknown_rank:
        raise TensorError("tensor shape has unknown rank")
    return tuple(int(d.size) for d in proto.tensor_shape.dim)


def declared_bytes(proto: tensor_pb2.TensorProto) -> int:
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


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> npt.NDArray[np.generic]:
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
    if proto.dtype == types_pb2.DT_HALF:
        typed = np.array(values, dtype=np.uint16).view(np.float16)
    else:
        typed = np.array(values, dtype=dtype)
    if typed.size == count:
        return typed.reshape(shape)
    if typed.size == 1 or (typed.size == 0 and count == 0):
        return np.full(shape, typed[0] if typed.size else 0, dtype=dtype)
    raise TensorError(f"{typed.size} values given for shape {shape}")
