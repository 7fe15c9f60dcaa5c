"""Domain errors → HTTP in one place: a message naming the field, never a traceback."""

from __future__ import annotations


class ApiError(Exception):
    """A client-visible error: HTTP status, message, the offending field, optional headers."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        code: str = "invalid_request_error",
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.code = code
        # OpenAI's error ``type`` when it differs from ``code`` (model_not_found is an
        # invalid_request_error); the ``code`` otherwise.
        self.error_type = error_type or code


def field_error(field: str, message: str) -> ApiError:
    return ApiError(400, f"{field}: {message}", field=field)
