"""A Faust Monitor without per-event bookkeeping (STREAMREC_FAUST_MONITOR=quiet).

Faust calls its Monitor for every message fetched and every event a stream takes: counters per
topic, stream and task, a timestamp on each message and event, a deque of event run times
(DESIGN.md measured 5-10 µs an event; docs/PERFORMANCE.md, "Faust's own path", found no gain
from this class in its harness, so it is off by default); streamrec's metrics
(stream/metrics.py) are its own and never read the Monitor. The quiet one keeps only what Faust
itself reads back: the time a stream last took an event from each partition, which the aiokafka
driver's stall check (``verify_event_path``) compares with the fetch position to warn about a
stuck agent. Rebalance, commit, send and web-request sensors stay Faust's own: they are not per
event.
"""

from __future__ import annotations

from time import monotonic
from typing import Any, Optional

from faust.sensors import Monitor

__all__ = ["QuietMonitor"]


class QuietMonitor(Monitor):
    """Faust's Monitor, minus its per-message and per-event work.

    Examples
    --------
    >>> from faust.types import TP
    >>> m = QuietMonitor()
    >>> tp = TP("clicks", 0)
    >>> m.on_message_in(tp, 7, None)
    >>> m.on_stream_event_in(tp, 7, None, None) is None, tp in m.stream_inbound_time
    (True, True)
    >>> m.messages_received_total, m.events_total
    (0, 0)
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """Nothing per message (Faust counts and timestamps each)."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Optional[dict]:
        """Only the time the partition's stream last took an event: Faust's stall check reads it."""
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Optional[dict] = None) -> None:
        """Nothing per event (Faust times each one)."""

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Nothing per acknowledged message."""

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        """Nothing per message: the end offsets are streamrec_consumer_lag_messages' business."""
