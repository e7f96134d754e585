"""How the report's tables (the terminal's and report.html's) show one value in a cell:
seconds, a count, milliseconds, with "-" for a figure that was not measured."""

from __future__ import annotations

import math
from typing import Optional


def secs(value: Optional[float], digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f} s" if round(value, digits) else f"{0:.{digits}f} s"  # no -0.000


def num(value) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, (int, float)) \
        and not isinstance(value, bool) else str(value)


def millis(value: Optional[float]) -> str:
    return "-" if value is None else f"{value * 1000:.3f} ms"
