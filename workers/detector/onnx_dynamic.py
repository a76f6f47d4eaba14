"""Graph rewrites that let the published SCRFD and CenterFace ONNX files take any frame size.

Both files declare fixed input sizes (SCRFD 1×3×640×640, CenterFace 10×3×32×32). Running a
crowd photo at its own (or twice its own) size needs height and width to be free, so:

- SCRFD: its two FPN upsampling `Resize` nodes carry fixed output *sizes* (40×40, 80×80);
  they are rewritten to *scale factors* [1, 1, 2, 2], which is what they compute at 640 and
  what the network means at every size.
- CenterFace: every dimension is fixed and all 194 weights are also listed as graph inputs
  (an old exporter's habit). Listing them as inputs makes ONNX Runtime treat them as
  overridable, which disables constant folding and fusions (~7× slower), so they are removed.

In both, the batch/height/width of the input and outputs become symbolic and the stale
intermediate shapes (`value_info`) are dropped, so ONNX Runtime infers them per run. The
functions take and return `onnx.ModelProto` and never touch the weights; they are pure apart
from copying the proto.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

SCRFD_UPSAMPLE_SCALES = (1.0, 1.0, 2.0, 2.0)
_SCALES_NAME = "maskwatch_upsample_scales"


def _symbolic(value: onnx.ValueInfoProto, names: list[str | None]) -> None:
    """Replace the dims of `value` whose `names` entry is a string by that symbolic name."""
    dims = value.type.tensor_type.shape.dim
    for dim, name in zip(dims, names, strict=True):
        if name is not None:
            dim.Clear()
            dim.dim_param = name


def _free_input_and_outputs(model: onnx.ModelProto, output_names: list[str | None]) -> None:
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    if len(inputs) != 1:
        raise ValueError(f"expected one image input, found {[v.name for v in inputs]}")
    _symbolic(inputs[0], ["batch", None, "height", "width"])
    for output in graph.output:
        rank = len(output.type.tensor_type.shape.dim)
        _symbolic(output, output_names[:rank])
    del graph.value_info[:]


def scrfd_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the SCRFD graph that accepts 1×3×H×W inputs (H, W multiples of 32).

    Raises ValueError if the graph is not the expected one (two `Resize` nodes with
    constant `sizes` inputs), so a changed upstream file fails loudly, not silently wrong.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    resizes = [node for node in graph.node if node.op_type == "Resize"]
    initializers = {init.name: init for init in graph.initializer}
    if len(resizes) != 2 or any(
        len(node.input) != 4 or node.input[3] not in initializers for node in resizes
    ):
        raise ValueError("expected two Resize nodes with constant sizes (SCRFD-2.5G layout)")
    stale_sizes = {node.input[3] for node in resizes}
    scales = numpy_helper.from_array(np.array(SCRFD_UPSAMPLE_SCALES, np.float32), _SCALES_NAME)
    graph.initializer.append(scales)
    for node in resizes:
        node.input[2] = _SCALES_NAME
        del node.input[3]
    kept = [init for init in graph.initializer if init.name not in stale_sizes]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    # Outputs are [1, anchors, k]: the anchor count follows H and W.
    _free_input_and_outputs(out, [None, "anchors", None])
    onnx.checker.check_model(out)
    return out


def centerface_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the CenterFace graph with symbolic batch/H/W and weights that are no
    longer graph inputs (see the module doc for why that matters for speed)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    weights = {init.name for init in graph.initializer}
    image_inputs = [value for value in graph.input if value.name not in weights]
    del graph.input[:]
    graph.input.extend(image_inputs)
    # Outputs are [N, C, H/4, W/4].
    _free_input_and_outputs(out, ["batch", None, "height_4", "width_4"])
    onnx.checker.check_model(out)
    return out
