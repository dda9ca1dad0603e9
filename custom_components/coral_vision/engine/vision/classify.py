"""Read class scores out of a classification model's output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ModelError
from ..models.model import Model
from ..results import Classification


def get_classes(
    model: Model, outputs: Sequence[npt.NDArray[Any]], *, threshold: float = 0.0, top_k: int = 5
) -> tuple[Classification, ...]:
    """Return the top_k classes scoring at least threshold, best first."""
    if model.task != "classification" or len(outputs) != 1:
        raise ModelError(f"{model.name} is not a classification model")
    scores = model.outputs[0].dequantize(np.asarray(outputs[0])).ravel()
    if top_k <= 0 or scores.size == 0:
        return ()
    k = min(top_k, scores.size)
    best: list[int] = [int(i) for i in np.argpartition(scores, -k)[-k:]]
    ranked = sorted(((float(scores[i]), i) for i in best), key=lambda pair: (-pair[0], pair[1]))
    return tuple(
        Classification(model.labels.name(i), i, score) for score, i in ranked if score >= threshold
    )
