"""Data access: plain functions, session first, keyword-only, no HTTP types."""

from trainboard.store.errors import Conflict, NotFound, StoreError

__all__ = ["Conflict", "NotFound", "StoreError"]
