"""An anatomy event's time as a reader sees it, in the terminal and in report.html.

The observer samples the nodes every --observe-interval, so it may see a promotion after
a client already wrote to the new primary. The anatomy lists such an event before that
write (it had happened by then) while its `at` stays the sample's: printed as it is,
"+16.772" would stand above the write's "+16.756" and read as an error. It is shown as
"by +16.756", the sample's own time going to the detail.
"""

from __future__ import annotations

from typing import Callable, Optional


def event_when(event: dict, show: Callable[[float], str]) -> tuple[str, str]:
    """(when, detail) of one of the report's anatomy events, with `show` turning a time
    into text: the sample's time, or "by" the write that bounds it."""
    detail = event.get("detail") or ""
    by: Optional[float] = event.get("happened_by")
    if by is None:
        return show(event["at"]), detail
    seen = f"seen in the sample at {show(event['at'])}"
    return f"by {show(by)}", f"{detail}; {seen}" if detail else seen


def after_fault(event: dict) -> Optional[float]:
    """Seconds from the fault to the time event_when shows (None: no fault)."""
    since, by = event.get("seconds_after_fault"), event.get("happened_by")
    return since if since is None or by is None else since + by - event["at"]
