"""The rule violations the storage layer reports (nothing is written when one is raised)."""

from __future__ import annotations


class StorageError(Exception):
    """Base of the rule violations the storage layer reports."""


class NumberCapReached(StorageError):
    """The organisation already holds the maximum number of active numbers."""


class CallLimitReached(StorageError):
    """The organisation already has its maximum of live calls (on every node together)."""


class TokenCapReached(StorageError):
    """The organisation already holds the maximum number of usable tokens."""


class NumberInUse(StorageError):
    """The E.164 number is already active (in this or another organisation)."""


class DuplicateHandle(StorageError):
    """The organisation already has an identity with this handle."""


class DatabaseUnavailable(StorageError):
    """The database could not be opened: unreachable, refused the login, or not a database."""
