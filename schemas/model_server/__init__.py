"""The model-server contract: what the detector's client and every server agree on.

The classifier is served over the TensorFlow Serving gRPC API (PredictionService) by the
official TF Serving image, OpenVINO Model Server or `maskwatch serve`; all of them, the export
that writes the model and the client that calls it read these names from here.
`schemas.model_server.wire` holds our own minimal wire-compatible messages (so a client needs
protobuf and grpcio, never TensorFlow) and `schemas.model_server.tensors` the array encoding.
"""

from __future__ import annotations

MODEL_NAME = "mask_classifier"
"""Model name (the folder under the model base path, `model_spec.name` in requests)."""
SIGNATURE = "serving_default"
"""Signature of the SavedModel and `model_spec.signature_name` of every request."""
INPUT = "crops"
"""Input tensor: uint8 RGB face crops, shape [N, S, S, 3] (S = the crop side in pixels)."""
OUTPUT = "probabilities"
"""Output tensor: float32 [N, 2] class probabilities in `CLASSES` order (rows sum to 1)."""
CLASSES = ("with_mask", "without_mask")
"""Output columns; a mask worn wrongly counts as `without_mask`, as in the method."""
WITH_MASK = CLASSES.index("with_mask")
"""Column of P(with_mask)."""

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_STATUS_METHOD = "/tensorflow.serving.ModelService/GetModelStatus"
"""Fixed gRPC method paths of TF Serving's API (the services keep TF Serving's names;
our message types only mirror its field layout)."""
