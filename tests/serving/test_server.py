"""`maskwatch serve` over real gRPC: Predict, metadata, status, health and error codes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import keras
import numpy as np
import numpy.typing as npt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from schemas.model_server.tensors import fill_tensor, from_tensor_proto
from serving.export import export_model


def predict_request(
    crops: np.ndarray, name: str = "tiny", **spec: Any
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    fill_tensor(request.inputs["crops"], crops)
    return request


def declaring(request: predict_pb2.PredictRequest, shape: tuple[int, ...]) -> None:
    """Replace the request's crops by a uint8 tensor of a few bytes whose one value would
    fill `shape`."""
    proto = request.inputs["crops"]
    proto.Clear()
    proto.dtype = types_pb2.DT_UINT8
    proto.int_val.append(7)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)


def probabilities_of(response: predict_pb2.PredictResponse) -> npt.NDArray[np.float32]:
    return from_tensor_proto(response.outputs["probabilities"]).astype(np.float32, copy=False)


def rpc_code(call: Any, request: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    code: grpc.StatusCode = caught.value.code()
    return code


def test_predict_matches_the_model_in_process(
    channel: grpc.Channel, tiny: Any, tiny_model: keras.Model
) -> None:
    crops = tiny.crops(6, seed=1)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(predict_request(crops), timeout=10)
    assert response.model_spec.name == "tiny"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    assert from_tensor_proto(response.outputs["probabilities"]).dtype == np.float32
    probabilities = probabilities_of(response)
    np.testing.assert_allclose(probabilities, tiny.expected(tiny_model, crops), atol=1e-6)


def test_predict_accepts_typed_values_and_an_explicit_version(
    channel: grpc.Channel, tiny: Any, tiny_model: keras.Model
) -> None:
    """Clients like tf.make_tensor_proto send small tensors as int_val, not raw bytes."""
    crops = tiny.crops(2, seed=2)
    request = predict_request(crops, version=1, signature_name="serving_default")
    tensor = request.inputs["crops"]
    tensor.tensor_content = b""
    tensor.int_val.extend(int(v) for v in crops.ravel())
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
        request, timeout=10
    )
    np.testing.assert_allclose(
        probabilities_of(response),
        tiny.expected(tiny_model, crops),
        atol=1e-6,
    )


def test_an_empty_batch_gets_an_empty_answer(channel: grpc.Channel, tiny: Any) -> None:
    crops = np.zeros((0, tiny.px, tiny.px, 3), np.uint8)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    probabilities = probabilities_of(stub.Predict(predict_request(crops), timeout=10))
    assert probabilities.shape == (0, 2)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown model", grpc.StatusCode.NOT_FOUND),
        ("unknown version", grpc.StatusCode.NOT_FOUND),
        ("version label", grpc.StatusCode.NOT_FOUND),
        ("unknown signature", grpc.StatusCode.INVALID_ARGUMENT),
        ("wrong dtype", grpc.StatusCode.INVALID_ARGUMENT),
        ("wrong crop size", grpc.StatusCode.INVALID_ARGUMENT),
        ("wrong rank", grpc.StatusCode.INVALID_ARGUMENT),
        ("wrong input name", grpc.StatusCode.INVALID_ARGUMENT),
        ("extra input", grpc.StatusCode.INVALID_ARGUMENT),
        ("unknown output", grpc.StatusCode.INVALID_ARGUMENT),
        ("truncated content", grpc.StatusCode.INVALID_ARGUMENT),
        ("rows over the limit from one value", grpc.StatusCode.INVALID_ARGUMENT),
        ("gigabytes declared by one value", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("negative dimension", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_predict_errors_have_the_right_status(
    channel: grpc.Channel, tiny: Any, case: str, code: grpc.StatusCode
) -> None:
    crops = tiny.crops(2)
    request = predict_request(crops)
    if case == "unknown model":
        request.model_spec.name = "nope"
    elif case == "unknown version":
        request.model_spec.version.value = 7
    elif case == "version label":
        request.model_spec.version_label = "stable"
    elif case == "unknown signature":
        request.model_spec.signature_name = "classify"
    elif case == "wrong dtype":
        fill_tensor(request.inputs["crops"], crops.astype(np.float32))
    elif case == "wrong crop size":
        fill_tensor(request.inputs["crops"], tiny.crops(2, px=tiny.px + 1))
    elif case == "wrong rank":
        fill_tensor(request.inputs["crops"], crops[0])
    elif case == "wrong input name":
        request.inputs["images"].CopyFrom(request.inputs.pop("crops"))
    elif case == "extra input":
        fill_tensor(request.inputs["extra"], crops)
    elif case == "unknown output":
        request.output_filter.append("logits")
    elif case == "truncated content":
        request.inputs["crops"].tensor_content = request.inputs["crops"].tensor_content[:-1]
    elif case == "rows over the limit from one value":  # 4.9 GB if filled: refused first
        declaring(request, (100_000, 128, 128, 3))
    elif case == "gigabytes declared by one value":
        declaring(request, (1000, 1000, 1000, 3))
    elif case == "negative dimension":
        declaring(request, (2, -1, 8, 3))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert rpc_code(stub.Predict, request) == code


def test_metadata_describes_the_serving_signature(channel: grpc.Channel, tiny: Any) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "tiny"
    request.metadata_field.append("signature_def")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.GetModelMetadata(request, timeout=10)
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    crops = signature.inputs["crops"]
    assert crops.dtype == types_pb2.DT_UINT8
    assert [d.size for d in crops.tensor_shape.dim] == [-1, tiny.px, tiny.px, 3]
    probabilities = signature.outputs["probabilities"]
    assert probabilities.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in probabilities.tensor_shape.dim] == [-1, 2]

    request.ClearField("metadata_field")
    assert rpc_code(stub.GetModelMetadata, request) == grpc.StatusCode.INVALID_ARGUMENT
    request.metadata_field.append("signature_def")
    request.model_spec.name = "nope"
    assert rpc_code(stub.GetModelMetadata, request) == grpc.StatusCode.NOT_FOUND


def test_model_status_reports_the_available_version(channel: grpc.Channel) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "tiny"
    (status,) = stub.GetModelStatus(request, timeout=10).model_version_status
    assert (status.version, status.state) == (1, 30)  # AVAILABLE
    request.model_spec.version.value = 5
    assert rpc_code(stub.GetModelStatus, request) == grpc.StatusCode.NOT_FOUND
    request.model_spec.ClearField("version")
    request.model_spec.name = "nope"
    assert rpc_code(stub.GetModelStatus, request) == grpc.StatusCode.NOT_FOUND


def test_health_service_reports_serving(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tensorflow.serving.PredictionService"):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_batch_larger_than_grpc_default_message_limit(tmp_path: Any, tiny: Any) -> None:
    """80 crops of 160 px are 6 MB: above gRPC's 4 MB default on both sides."""
    model = tiny.build(px=160)
    export_model(model, tmp_path, tiny.name, 1)
    crops = tiny.crops(80, px=160)
    assert crops.nbytes > 4 * 1024 * 1024
    limit = 64 << 20
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    with (
        tiny.serve(tmp_path) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}", options=options) as channel,
    ):
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            predict_request(crops), timeout=30
        )
        probabilities = probabilities_of(response)
    np.testing.assert_allclose(probabilities, tiny.expected(model, crops), atol=1e-6)


def test_concurrent_requests_are_batched_and_answered_row_for_row(
    tiny_base: Any, tiny: Any, tiny_model: keras.Model
) -> None:
    def calls() -> float:
        return REGISTRY.get_sample_value("maskwatch_model_server_batch_rows_count") or 0.0

    requests = [tiny.crops(1 + i % 3, seed=100 + i) for i in range(16)]
    with (
        tiny.serve(tiny_base, batch_timeout_ms=500.0, max_batch_size=64) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        before = calls()
        with ThreadPoolExecutor(len(requests)) as pool:
            responses = list(
                pool.map(lambda c: stub.Predict(predict_request(c), timeout=30), requests)
            )
        model_calls = calls() - before
    for crops, response in zip(requests, responses, strict=True):
        got = probabilities_of(response)
        np.testing.assert_allclose(got, tiny.expected(tiny_model, crops), atol=1e-6)
    assert 1 <= model_calls < len(requests)


def test_no_version_loaded_is_unavailable_then_a_first_version_is_served(
    tmp_path: Any, tiny: Any, tiny_model: keras.Model
) -> None:
    with (
        tiny.serve(tmp_path, wait_version=None) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert rpc_code(stub.Predict, predict_request(tiny.crops(1))) == grpc.StatusCode.UNAVAILABLE
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="")
        assert health.Check(check, timeout=10).status == health_pb2.HealthCheckResponse.NOT_SERVING
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = tiny.name
        assert (
            rpc_code(model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus, status)
            == grpc.StatusCode.NOT_FOUND
        )
        export_model(tiny_model, tmp_path, tiny.name, 1)
        tiny.wait_for(
            lambda: (
                health.Check(check, timeout=10).status == health_pb2.HealthCheckResponse.SERVING
            ),
            "SERVING after the first version appears",
        )
        response = stub.Predict(predict_request(tiny.crops(1)), timeout=10)
        assert response.model_spec.version.value == 1


def test_a_broken_version_is_reported_and_the_old_one_keeps_serving(
    tmp_path: Any, tiny: Any, tiny_model: keras.Model
) -> None:
    export_model(tiny_model, tmp_path, tiny.name, 1)
    with (
        tiny.serve(tmp_path) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        broken = tmp_path / tiny.name / "2"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = tiny.name
        status.model_spec.version.value = 2
        models = model_service_pb2_grpc.ModelServiceStub(channel)

        def failed() -> bool:
            try:
                (entry,) = models.GetModelStatus(status, timeout=10).model_version_status
            except grpc.RpcError:
                return False
            return entry.state == 50 and "load failed" in entry.status.error_message

        tiny.wait_for(failed, "version 2 reported as failed")
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            predict_request(tiny.crops(1)), timeout=10
        )
        assert response.model_spec.version.value == 1
