"""One error hierarchy for the whole platform; one handler turns it into ``{"error", "detail"}``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AppError(Exception):
    """An expected failure with an HTTP status. ``error`` is the stable machine-readable name."""

    status: int = 400
    error: str = "BadRequest"
    headers: dict[str, str] | None = None  # sent with the response, e.g. Retry-After

    def __init__(self, detail: str, status: int | None = None, *, error: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if error is not None:
            self.error = error

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail}


class BadRequest(AppError):
    status, error = 400, "BadRequest"


class Unauthorized(AppError):
    status, error = 401, "Unauthorized"


class Forbidden(AppError):
    status, error = 403, "Forbidden"


class NotFound(AppError):
    status, error = 404, "NotFound"


class Conflict(AppError):
    status, error = 409, "Conflict"


class PayloadTooLarge(AppError):
    status, error = 413, "PayloadTooLarge"


class Unprocessable(AppError):
    status, error = 422, "ValidationError"


class TooManyRequests(AppError):
    status, error = 429, "TooManyRequests"


class ServiceUnavailable(AppError):
    """Overloaded right now (no database connection free, too many password checks waiting)."""

    status, error = 503, "Unavailable"
    headers: dict[str, str] | None = {"Retry-After": "1"}


class RangeNotSatisfiable(AppError):
    status, error = 416, "RangeNotSatisfiable"


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the expected errors of a route."""
    out: dict[int | str, dict[str, Any]] = {}
    for err in errors:
        out[err.status] = {"model": ErrorBody, "description": err.error}
    return out


class ErrorBody(BaseModel):
    """The JSON shape of every error response."""

    error: str
    detail: str
