"""The rules a metric point must meet, in a module without dependencies: the server validates
points with them, and the tracking client checks points before sending (and imports fast)."""

from __future__ import annotations

METRIC_KEY_PATTERN = r"^[A-Za-z0-9_.\-/]{1,200}$"
MAX_STEP = 2**62  # steps are 0..MAX_STEP: a 64-bit signed column with room to spare
