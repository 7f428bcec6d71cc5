"""How a batch of points reaches the server: bad points are found and set aside instead of
blocking everything logged after them, and failures space out the next try."""

from __future__ import annotations

import time
from collections.abc import Callable

from trainboard.tracking.spool import Point
from trainboard.tracking.transport import Refused, Transport

BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0)  # seconds between tries while the server is away

SetAside = Callable[[list[Point], str], None]


def send_points(
    transport: Transport, run_id: int, points: list[Point], set_aside: SetAside
) -> None:
    """Send `points`. A 422 (the server will never take some point of them) splits them in
    halves until each refused point is found, given to `set_aside` with the server's reason,
    and the rest are sent: one bad point costs about 2·log2(len) requests, once. Raises
    Unreachable, or Refused for any other refusal (the run, not a point, is the problem)."""
    try:
        transport.send_points(run_id, points)
    except Refused as exc:
        if exc.status != 422 or not points:
            raise
        if len(points) == 1:
            set_aside(points, str(exc))
            return
        middle = len(points) // 2
        send_points(transport, run_id, points[:middle], set_aside)
        send_points(transport, run_id, points[middle:], set_aside)


class Backoff:
    """When the next try is due: at once after a success, later after each failure in a row."""

    def __init__(self) -> None:
        self.failures = 0
        self.retry_at = 0.0

    def due(self, now: float) -> bool:
        return now >= self.retry_at

    def success(self) -> None:
        self.failures, self.retry_at = 0, 0.0

    def failure(self) -> None:
        self.retry_at = time.monotonic() + BACKOFF[min(self.failures, len(BACKOFF) - 1)]
        self.failures += 1
