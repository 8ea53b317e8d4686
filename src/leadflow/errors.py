"""Domain errors, mapped to HTTP responses once in ``main.py``."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a rule of the domain refused the request."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """The object does not exist or is not visible to the caller."""

    status_code = 404


class PermissionDenied(DomainError):
    """The caller's role does not allow this."""

    status_code = 403


class NotAuthenticated(DomainError):
    """No valid session or token."""

    status_code = 401


class Conflict(DomainError):
    """The request conflicts with the current state."""

    status_code = 409


class InvalidInput(DomainError):
    """Input failed validation."""

    status_code = 422
