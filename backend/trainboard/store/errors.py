"""What the store refuses, in sentences a person can act on; the API maps them to status codes."""

import errno


class StoreError(Exception):
    pass


class NotFound(StoreError):
    """No such thing (404)."""


class Conflict(StoreError):
    """Not allowed in the current state (409)."""


class StorageFull(StoreError):
    """The disk is full; nothing was written (507)."""


def raise_if_disk_full(exc: OSError, what: str) -> None:
    """StorageFull when `exc` says the disk (or a quota) is full and `what` was not stored."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise StorageFull(
            f"the disk is full: {what} was not stored; free some space and retry"
        ) from exc
