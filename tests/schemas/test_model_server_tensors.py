"""TensorProto ⇄ NumPy conversion shared by the client (our messages) and the server (TF's)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from schemas.model_server.tensors import TensorError, fill_tensor, from_tensor_proto
from schemas.model_server.wire import DataType, TensorMessage, TensorProto

MAKERS: dict[str, Callable[[], TensorMessage]] = {
    "ours": TensorProto,
    "tensorflow": tensor_pb2.TensorProto,
}


def encoded(array: np.ndarray, make: Callable[[], TensorMessage] = TensorProto) -> TensorMessage:
    proto = make()
    fill_tensor(proto, array)
    return proto


@pytest.mark.parametrize("make", list(MAKERS.values()), ids=list(MAKERS))
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_]
)
def test_round_trip_keeps_values_dtype_and_shape(
    dtype: type, make: Callable[[], TensorMessage]
) -> None:
    array: np.ndarray = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    back = from_tensor_proto(encoded(array, make))
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_big_endian_input_is_sent_little_endian() -> None:
    array = np.arange(6, dtype=">i4").reshape(2, 3)
    proto = encoded(array)
    assert proto.tensor_content[:4] == b"\x00\x00\x00\x00"
    assert proto.tensor_content[4:8] == b"\x01\x00\x00\x00"
    np.testing.assert_array_equal(from_tensor_proto(proto), array)


def test_agrees_with_tensorflow_in_both_directions() -> None:
    array = np.random.default_rng(0).integers(0, 256, (3, 5, 5, 3), dtype=np.uint8)
    ours = encoded(array)
    theirs = tensor_pb2.TensorProto.FromString(ours.SerializeToString())
    np.testing.assert_array_equal(tf.make_ndarray(theirs), array)
    floats = np.linspace(0, 1, 12, dtype=np.float16).reshape(3, 4)
    typed = tf.make_tensor_proto(floats)  # small tensors may come as half_val, not bytes
    np.testing.assert_array_equal(from_tensor_proto(typed), floats)
    as_ours = TensorProto.FromString(typed.SerializeToString())
    np.testing.assert_array_equal(from_tensor_proto(as_ours), floats)
    np.testing.assert_array_equal(from_tensor_proto(tf.make_tensor_proto(array)), array)


def test_a_single_typed_value_fills_the_shape() -> None:
    proto = TensorProto()
    proto.dtype = DataType.DT_FLOAT
    proto.tensor_shape.dim.add(size=2)
    proto.tensor_shape.dim.add(size=3)
    proto.float_val.append(0.5)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(from_tensor_proto(proto), np.full((2, 3), 0.5, np.float32))


def test_malformed_tensors_are_rejected() -> None:
    content = encoded(np.zeros((2, 2), np.uint8))
    content.tensor_content = content.tensor_content[:-1]
    with pytest.raises(TensorError, match="bytes"):
        from_tensor_proto(content)
    values = TensorProto()
    values.dtype = DataType.DT_INT32
    values.tensor_shape.dim.add(size=3)
    values.int_val.extend([1, 2])  # type: ignore[attr-defined]
    with pytest.raises(TensorError, match="2 values"):
        from_tensor_proto(values)
    strings = TensorProto()
    strings.dtype = DataType.DT_STRING
    with pytest.raises(TensorError, match="DT_STRING"):
        from_tensor_proto(strings)
    unknown = TensorProto()
    unknown.dtype = 99  # proto3 enums are open: a newer TensorFlow dtype stays readable
    with pytest.raises(TensorError, match="dtype 99"):
        from_tensor_proto(unknown)
    with pytest.raises(TensorError, match="unsupported dtype"):
        fill_tensor(TensorProto(), np.zeros(2, np.complex64))
