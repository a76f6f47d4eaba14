"""Hot reload: a version written while the server answers is swapped in without a restart."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import grpc
import keras
import numpy as np
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from schemas.model_server.tensors import fill_tensor, from_tensor_proto
from serving.export import export_model


def test_new_version_is_picked_up_while_serving_without_failed_calls(
    tmp_path: Path, tiny: Any, tiny_model: keras.Model
) -> None:
    export_model(tiny_model, tmp_path, tiny.name, 1)
    newer = tiny.build(seed=7)
    crops = tiny.crops(4, seed=3)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = tiny.name
    fill_tensor(request.inputs["crops"], crops)
    answers: list[tuple[int, np.ndarray]] = []
    errors: list[grpc.RpcError] = []
    stop = threading.Event()

    with (
        tiny.serve(tmp_path) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def keep_asking() -> None:
            while not stop.is_set():
                try:
                    response = stub.Predict(request, timeout=10)
                except grpc.RpcError as error:
                    errors.append(error)
                    continue
                answers.append(
                    (
                        response.model_spec.version.value,
                        from_tensor_proto(response.outputs["probabilities"]),
                    )
                )

        asker = threading.Thread(target=keep_asking)
        asker.start()
        try:
            tiny.wait_for(lambda: len(answers) >= 3, "answers from version 1")
            export_model(newer, tmp_path, tiny.name, 2)
            tiny.wait_for(lambda: answers[-1][0] == 2, "answers from version 2")
            seen = len(answers)
            tiny.wait_for(lambda: len(answers) >= seen + 3, "more answers from version 2")
        finally:
            stop.set()
            asker.join()

        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = tiny.name
        states = {
            s.version: s.state
            for s in model_service_pb2_grpc.ModelServiceStub(channel)
            .GetModelStatus(status, timeout=10)
            .model_version_status
        }

    assert errors == []
    versions = [version for version, _ in answers]
    assert versions == sorted(versions), "once version 2 answers, version 1 never does again"
    for version, probabilities in answers:
        model = tiny_model if version == 1 else newer
        np.testing.assert_allclose(probabilities, tiny.expected(model, crops), atol=1e-6)
    assert not np.allclose(tiny.expected(tiny_model, crops), tiny.expected(newer, crops))
    assert states == {2: 30, 1: 50}  # AVAILABLE, END
