"""Bounds on the work one argument can ask for, in one place (no heavy imports: the CLI parses with these).

Each bound is far above any published setting and far below what would take hours or terabytes, so a typo fails
at once with a message that names the argument and the limit, instead of running for an hour or allocating 9 TB.
"""

from __future__ import annotations

#: Sliding windows per image side (the official NYUv2 test uses 2; covering a very elongated image may need more).
MAX_WINDOWS = 64

#: Longest side an image may be resized to for the model (``processing_resolution``).
MAX_PROCESSING_RESOLUTION = 8192

#: Pixels of one image as the model sees it (after ``processing_resolution``): 2048 x 2048. A full SD-1.5 VPD
#: forward at this size needs about 10 GB; `vpd predict` runs larger photos at the largest size within the
#: budget (and says so), the Python API refuses them unless ``max_pixels`` is raised.
MAX_MODEL_PIXELS = 2048 * 2048
