"""The model server's gRPC contract: names both sides agree on, and the wire messages.

The detector workers call the classifier over TensorFlow Serving's gRPC API (served by
`maskwatch serve`, TensorFlow Serving or OpenVINO Model Server). The names below are the
servable's side of that contract; `schemas.model_server.wire` holds our own minimal,
wire-compatible messages, so a client needs protobuf and grpcio but never TensorFlow.
"""

from __future__ import annotations

MODEL_NAME = "mask_classifier"
"""Default model name: the folder `<base>/<MODEL_NAME>/<version>/`."""
SIGNATURE_NAME = "serving_default"
INPUT_NAME = "crops"
"""uint8 RGB crops [N, S, S, 3]; normalisation is part of the model."""
OUTPUT_NAME = "probabilities"
"""float32 [N, len(CLASSES)], rows sum to 1."""
CLASSES = ("with_mask", "without_mask")
"""Column order of OUTPUT_NAME (and the label order in training)."""

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_STATUS_METHOD = "/tensorflow.serving.ModelService/GetModelStatus"
"""Fixed gRPC method paths of TF Serving's API (the services keep TF Serving's names;
our message types only mirror its field layout)."""
