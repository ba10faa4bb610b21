"""Homeport's one error vocabulary.

Every error a client can see is a subclass of :class:`HomeportError` carrying the AWS error
code and HTTP status; the API edge turns it into the AWS JSON error body in one place.
Backends translate their native errors into these at their boundary.
"""

from __future__ import annotations


class HomeportError(Exception):
    """Base error: an AWS error code, an HTTP status and a message."""

    code: str = "InternalFailure"
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationException(HomeportError):
    code = "ValidationException"
    status = 400


class ValidationError(HomeportError):
    """The runtime API's spelling (sagemaker-runtime answers ValidationError)."""

    code = "ValidationError"
    status = 400


class ResourceInUse(HomeportError):
    code = "ResourceInUse"
    status = 400


class ResourceNotFound(HomeportError):
    code = "ResourceNotFound"
    status = 400


class ResourceLimitExceeded(HomeportError):
    code = "ResourceLimitExceeded"
    status = 400


class ConflictException(HomeportError):
    code = "ConflictException"
    status = 400


class UnknownOperationException(HomeportError):
    code = "UnknownOperationException"
    status = 400


class SerializationException(HomeportError):
    code = "SerializationException"
    status = 400


class InternalFailure(HomeportError):
    code = "InternalFailure"
    status = 500


class NotFoundError(HomeportError):
    """A missing resource as real SageMaker reports it: a ValidationException.

    The service model declares ResourceNotFound, but real SageMaker answers "not found" with
    ValidationException and clients (botocore waiters, the SDK) depend on that code.
    """

    code = "ValidationException"
    status = 400


class StoreError(HomeportError):
    """A metadata-store failure that is not the client's fault."""

    code = "InternalFailure"
    status = 500


class AlreadyExistsError(HomeportError):
    """Raised by the metadata store when a primary key already exists."""

    code = "ResourceInUse"
    status = 400


class ObjectStoreError(HomeportError):
    code = "InternalFailure"
    status = 500


class NoSuchObject(ObjectStoreError):
    """An object or bucket that does not exist in the object store."""

    code = "ValidationException"
    status = 400


class ImageNotFound(HomeportError):
    code = "ValidationException"
    status = 400


class RuntimeUnavailable(HomeportError):
    """The configured runtime cannot run work on this machine (said at start-up)."""

    code = "InternalFailure"
    status = 500


class ModelError(HomeportError):
    """The serving container answered an invocation with an error (SageMaker Runtime's 424)."""

    code = "ModelError"
    status = 424

    def __init__(
        self, message: str, original_status: int, original_message: str, log_stream_arn: str
    ) -> None:
        super().__init__(message)
        self.original_status = original_status
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn


class ServiceUnavailable(HomeportError):
    code = "ServiceUnavailable"
    status = 503


class PayloadTooLarge(HomeportError):
    code = "ValidationError"
    status = 413
