"""Demo reports: one self-contained HTML page and one PNG with the same content, per task.

:mod:`vpd.report.common` holds the shared pieces; :func:`write_depth_report` (:mod:`vpd.report.depth`) and
:func:`write_semantic_report` (:mod:`vpd.report.semantic`) and :func:`write_referring_report`
(:mod:`vpd.report.referring`) and :func:`write_onestep_report` (:mod:`vpd.report.onestep`) the demos' reports.
"""

from __future__ import annotations

from vpd.report.common import loss_curve_png, loss_curve_svg, loss_points, table_png, text_block, write_report
from vpd.report.depth import MODELS, TABLE_METRICS, write_depth_report
from vpd.report.onestep import write_onestep_report
from vpd.report.referring import write_referring_report
from vpd.report.semantic import SEMANTIC_METRICS, SEMANTIC_MODELS, write_semantic_report

__all__ = [
    "MODELS",
    "SEMANTIC_METRICS",
    "SEMANTIC_MODELS",
    "TABLE_METRICS",
    "loss_curve_png",
    "loss_curve_svg",
    "loss_points",
    "table_png",
    "text_block",
    "write_depth_report",
    "write_onestep_report",
    "write_referring_report",
    "write_report",
    "write_semantic_report",
]
