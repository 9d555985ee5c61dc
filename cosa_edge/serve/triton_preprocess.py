"""The Python-backend model at the head of the Triton ensemble ``NAME_pipeline``: a raw frame in, the engine's input
out, through cosa-edge's own preprocessing (:func:`cosa_edge.data.resize_grey`), not a copy of it.

Triton's Python backend loads ``NAME_preprocess/1/model.py``, which export-triton writes as one import of
:class:`TritonPythonModel` from here, so the server's Python environment needs cosa-edge installed (its
deploy side: numpy and OpenCV). Inputs: ``frame`` UINT8 (H, W, C) with C = 1 (grey) or 3 (BGR, as OpenCV
decodes), of any size; ``roi`` INT32 (4,) x, y, w, h, optional. Output: ``image`` FP32 (1, 1, S, S), one
frame as the model takes it. A frame that cannot be prepared gets an error response of its own; the other
requests of the batch are answered.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..contract import INPUT_NAME, stack_frames
from ..data import resize_grey

FRAME_INPUT, ROI_INPUT = "frame", "roi"


def prepare_frame(frame: np.ndarray, size: int, roi: np.ndarray | None = None) -> np.ndarray:
    """One raw frame -> the engine's input (1, 1, S, S); ValueError with a sentence where it cannot be."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (1, 3):
        raise ValueError(f"frame must be UINT8 (H, W, 1) grey or (H, W, 3) BGR, not {frame.dtype} {frame.shape}")
    image = frame[:, :, 0] if frame.shape[2] == 1 else frame
    region = None
    if roi is not None:
        values = [int(v) for v in np.ravel(roi)]
        if len(values) != 4 or values[2] <= 0 or values[3] <= 0 or min(values) < 0:
            raise ValueError(f"roi must be four integers x, y, w, h with a positive width and height, not {values}")
        region = (values[0], values[1], values[2], values[3])
    return stack_frames([resize_grey(image, size, region)])


class TritonPythonModel:
    """Triton's Python-backend interface: ``initialize``, ``execute`` over a list of requests, ``finalize``."""

    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        self.size = int(config["parameters"]["input_size"]["string_value"])

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend, inside the server

        responses = []
        for request in requests:
            try:
                frame = pb_utils.get_input_tensor_by_name(request, FRAME_INPUT).as_numpy()
                roi_tensor = pb_utils.get_input_tensor_by_name(request, ROI_INPUT)
                image = prepare_frame(frame, self.size, None if roi_tensor is None else roi_tensor.as_numpy())
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(INPUT_NAME, image)]))
            except ValueError as exc:  # this request's fault: an error for it, the server carries on
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc))))
        return responses

    def finalize(self) -> None:
        pass
