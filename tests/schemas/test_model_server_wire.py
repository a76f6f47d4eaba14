"""Our model-server messages against TF Serving's own: same fields, same bytes both ways."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from google.protobuf import descriptor, descriptor_pb2, json_format
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2

from schemas.model_server import wire
from schemas.model_server.tensors import fill_tensor, from_tensor_proto

OFFICIAL = {
    "TensorProto": tensor_pb2.TensorProto,
    "PredictRequest": predict_pb2.PredictRequest,
    "PredictResponse": predict_pb2.PredictResponse,
    "GetModelStatusRequest": get_model_status_pb2.GetModelStatusRequest,
    "GetModelStatusResponse": get_model_status_pb2.GetModelStatusResponse,
}


def _walk(ours: descriptor.Descriptor, theirs: Any, path: str) -> list[str]:
    """Differences in number, type, label or oneof of every field we declare (recursively)."""
    problems = []
    for field in ours.fields:
        other = theirs.fields_by_name.get(field.name)
        where = f"{path}.{field.name}"
        if other is None:
            problems.append(f"{where}: not in TF Serving")
            continue
        mine = (field.number, field.type, field.is_repeated, bool(field.containing_oneof))
        official = (other.number, other.type, other.is_repeated, bool(other.containing_oneof))
        if mine != official:
            problems.append(f"{where}: ours {mine}, TF Serving {official}")
        if field.message_type is not None and field.message_type.full_name.startswith(wire.PACKAGE):
            problems += _walk(field.message_type, other.message_type, where)
        if field.enum_type is not None:
            values = {v.name: v.number for v in other.enum_type.values}  # type: ignore[union-attr]
            problems += [
                f"{where}: {v.name}={v.number}, TF Serving {values.get(v.name)}"
                for v in field.enum_type.values
                if values.get(v.name) != v.number
            ]
    return problems


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_every_field_matches_tf_serving(name: str) -> None:
    ours = getattr(wire, name)().DESCRIPTOR
    assert ours.full_name == f"{wire.PACKAGE}.{name}"
    assert _walk(ours, OFFICIAL[name].DESCRIPTOR, name) == []


def test_the_descriptor_is_proto3_with_our_own_package() -> None:
    proto = wire.file_descriptor()
    assert proto.package == wire.PACKAGE and proto.syntax == "proto3"
    built = descriptor_pb2.FileDescriptorProto()
    wire.PredictRequest().DESCRIPTOR.file.CopyToProto(built)
    assert built.package == wire.PACKAGE


def _request(make: Callable[[], Any]) -> Any:
    request = make()
    request.model_spec.name = "mask_classifier"
    request.model_spec.signature_name = "serving_default"
    request.model_spec.version.value = 7
    fill_tensor(
        request.inputs["crops"], np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    )
    request.output_filter.append("probabilities")
    return request


@pytest.mark.parametrize("direction", ["ours→theirs", "theirs→ours"])
def test_a_predict_request_survives_the_wire_both_ways(direction: str) -> None:
    kinds: list[Any] = [wire.PredictRequest, predict_pb2.PredictRequest]
    source_kind, target = kinds if direction == "ours→theirs" else kinds[::-1]
    source = _request(source_kind)
    parsed = target.FromString(source.SerializeToString())
    assert json_format.MessageToDict(parsed) == json_format.MessageToDict(source)
    np.testing.assert_array_equal(
        from_tensor_proto(parsed.inputs["crops"]),
        from_tensor_proto(source.inputs["crops"]),
    )


def test_responses_from_tf_serving_are_read() -> None:
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "mask_classifier"
    response.model_spec.version.value = 3
    fill_tensor(response.outputs["probabilities"], np.array([[0.25, 0.75]], np.float32))
    ours = wire.PredictResponse.FromString(response.SerializeToString())
    assert ours.model_spec.HasField("version") and ours.model_spec.version.value == 3
    np.testing.assert_array_equal(from_tensor_proto(ours.outputs["probabilities"]), [[0.25, 0.75]])
    status = get_model_status_pb2.GetModelStatusResponse()
    entry = status.model_version_status.add(version=3, state=30)
    entry.status.error_message = "fields we do not declare are skipped"
    read = wire.GetModelStatusResponse.FromString(status.SerializeToString())
    assert [(s.version, s.state) for s in read.model_version_status] == [
        (3, wire.VersionState.AVAILABLE)
    ]


def test_the_messages_load_without_tensorflow() -> None:
    code = (
        "import sys; import schemas.model_server.wire, schemas.model_server.tensors; "
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('tensorflow')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
