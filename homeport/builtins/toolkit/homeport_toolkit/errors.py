"""Errors with an HTTP status (serving) and the training toolkit's client errors.

A handler may raise :class:`InferenceError` (or a subclass) to answer with its own status code,
as sagemaker-inference's ``BaseInferenceToolkitError`` allows; any other exception from a
handler answers 500 with the exception's text.
"""

from __future__ import annotations


class InferenceError(Exception):
    """An invocation error answered with ``status_code`` and ``message`` as the body."""

    status_code = 500

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class BadRequest(InferenceError):
    """The body could not be decoded as its content type says."""

    status_code = 400


class UnsupportedContentType(InferenceError):
    """No decoder for the request's content type (HTTP 415)."""

    status_code = 415

    def __init__(self, content_type: str | None) -> None:
        super().__init__(
            f"Content type {content_type or '(none)'} is not supported by the default input_fn "
            "(supported: application/json, text/csv, application/x-npy, application/x-npz). "
            "Implement input_fn (or transform_fn) in your inference script to accept it."
        )
        self.content_type = content_type


class NotAcceptable(InferenceError):
    """No encoder for any type the request accepts (HTTP 406)."""

    status_code = 406

    def __init__(self, accept: str) -> None:
        super().__init__(
            f"Accept type {accept} is not supported by the default output_fn "
            "(supported: application/json, text/csv, application/x-npy). "
            "Implement output_fn (or transform_fn) in your inference script to produce it."
        )
        self.accept = accept


class ClientError(Exception):
    """A training failure caused by the job's input (its code, its configuration), not the toolkit."""
