"""Inference: predictors, test-time augmentation (window grids, flips, scales) and visualisation.

The predictors are imported on first use, so ``vpd.inference.tta`` and
``vpd.inference.visualize`` stay light (no diffusers import) for code that only needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vpd.inference.grids import crop_stride_windows, square_windows
from vpd.inference.tta import multi_scale_tta, predict_tta
from vpd.inference.visualize import COLORMAPS, colorize, colorize_depth, colorize_error, get_colormap, make_panel

if TYPE_CHECKING:
    from vpd.inference.onestep import OneStepPrediction, OneStepPredictor
    from vpd.inference.predictor import DepthPrediction, DepthPredictor
    from vpd.inference.referring import ReferringPrediction, ReferringPredictor
    from vpd.inference.segmentation import SemanticPrediction, SemanticPredictor

__all__ = [
    "COLORMAPS",
    "DepthPrediction",
    "DepthPredictor",
    "OneStepPrediction",
    "OneStepPredictor",
    "ReferringPrediction",
    "ReferringPredictor",
    "SemanticPrediction",
    "SemanticPredictor",
    "colorize",
    "colorize_depth",
    "colorize_error",
    "crop_stride_windows",
    "get_colormap",
    "make_panel",
    "multi_scale_tta",
    "predict_tta",
    "square_windows",
]


def __getattr__(name: str) -> Any:
    if name in ("DepthPredictor", "DepthPrediction"):
        from vpd.inference import predictor

        return getattr(predictor, name)
    if name in ("SemanticPredictor", "SemanticPrediction"):
        from vpd.inference import segmentation

        return getattr(segmentation, name)
    if name in ("ReferringPredictor", "ReferringPrediction"):
        from vpd.inference import referring

        return getattr(referring, name)
    if name in ("OneStepPredictor", "OneStepPrediction"):
        from vpd.inference import onestep

        return getattr(onestep, name)
    raise AttributeError(f"module 'vpd.inference' has no attribute {name!r}")
