"""TensorProto ⇄ NumPy conversion shared by the client and the server."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.tensors import TensorError, from_tensor_proto, to_tensor_proto


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_]
)
def test_round_trip_keeps_values_dtype_and_shape(dtype: type) -> None:
    array: np.ndarray = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    back = from_tensor_proto(to_tensor_proto(array))
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_agrees_with_tensorflow_in_both_directions() -> None:
    array = np.random.default_rng(0).integers(0, 256, (3, 5, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tf.make_ndarray(to_tensor_proto(array)), array)
    floats = np.linspace(0, 1, 12, dtype=np.float16).reshape(3, 4)
    typed = tf.make_tensor_proto(floats)  # small tensors may come as half_val, not bytes
    np.testing.assert_array_equal(from_tensor_proto(typed), floats)
    np.testing.assert_array_equal(from_tensor_proto(tf.make_tensor_proto(array)), array)


def test_a_single_typed_value_fills_the_shape() -> None:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add(size=2)
    proto.tensor_shape.dim.add(size=3)
    proto.float_val.append(0.5)
    np.testing.assert_array_equal(from_tensor_proto(proto), np.full((2, 3), 0.5, np.float32))


def test_malformed_tensors_are_rejected() -> None:
    content = to_tensor_proto(np.zeros((2, 2), np.uint8))
    content.tensor_content = content.tensor_content[:-1]
    with pytest.raises(TensorError, match="bytes"):
        from_tensor_proto(content)
    values = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32)
    values.tensor_shape.dim.add(size=3)
    values.int_val.extend([1, 2])
    with pytest.raises(TensorError, match="2 values"):
        from_tensor_proto(values)
    strings = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    with pytest.raises(TensorError, match="DT_STRING"):
        from_tensor_proto(strings)
    with pytest.raises(TensorError, match="unsupported dtype"):
        to_tensor_proto(np.zeros(2, np.complex64))
