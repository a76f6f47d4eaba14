"""The mask classifier: Xception transfer learning as the research method describes.

Input is a batch of uint8 RGB crops; normalisation lives inside the graph, so a client sends
raw pixels and can never disagree with training about preprocessing. Output is softmax
probabilities in `schemas.model_server.CLASSES` order.

Works on any Keras 3 backend: TensorFlow here (training, export, serving), JAX or PyTorch on
a GPU machine without TensorFlow.
"""

from __future__ import annotations

from typing import Literal

import keras

Weights = Literal["imagenet", "none"]


def build_classifier(input_px: int = 128, weights: Weights = "imagenet") -> keras.Model:
    """Xception(include_top=False) → global average pool → Dense 1024 ReLU → Dropout 0.5 →
    Dense 2 softmax, taking uint8 RGB crops of `input_px` square."""
    crops = keras.Input(shape=(input_px, input_px, 3), dtype="uint8", name="crops")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="xception_scale")(
        keras.ops.cast(crops, "float32")
    )
    base = keras.applications.Xception(
        include_top=False,
        weights=None if weights == "none" else "imagenet",
        input_shape=(input_px, input_px, 3),
    )
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(1024, activation="relu", name="fc")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    probabilities = keras.layers.Dense(
        2, activation="softmax", name="probabilities", dtype="float32"
    )(x)
    return keras.Model(crops, probabilities, name="mask_classifier")
