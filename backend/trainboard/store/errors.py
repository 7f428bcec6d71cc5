"""What the store refuses, in sentences a person can act on; the API maps them to status codes."""


class StoreError(Exception):
    pass


class NotFound(StoreError):
    """No such thing (404)."""


class Conflict(StoreError):
    """Not allowed in the current state (409)."""
