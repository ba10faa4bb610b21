"""Exit codes of the ``homeport`` client commands, and the one mapping of AWS errors onto them.

=====  ===============  ==================================================================
code   name             when
=====  ===============  ==================================================================
0      OK               the command did what was asked (a waited-for job Completed)
1      FAILED           the job / endpoint ended Failed, the container answered an error
                        (ModelError), or the server failed (InternalFailure, anything else)
2      USAGE            bad usage (Typer's own), or the server said ValidationException /
                        ValidationError / SerializationException (and it is neither of the
                        "not found" nor the "already existing" / "in-progress" kind)
3      STOPPED          the waited-for job ended Stopped (including MaxRuntimeExceeded)
4      NOT_FOUND        ResourceNotFound, or a "not found" / "Could not find" validation error
5      UNREACHABLE      no server answered at the endpoint URL
6      CONFLICT         ResourceInUse, ResourceLimitExceeded, ConflictException, "Cannot create
                        already existing …", "Cannot update in-progress …"
130    INTERRUPTED      Ctrl-C
=====  ===============  ==================================================================

Every error is printed to stderr as ``error: <AWS code>: <message>``.
"""

from __future__ import annotations

import enum
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    STOPPED = 3
    NOT_FOUND = 4
    UNREACHABLE = 5
    CONFLICT = 6
    INTERRUPTED = 130


# Final statuses of jobs and endpoints → exit code.
STATUS_EXIT = {
    "Completed": ExitCode.OK,
    "InService": ExitCode.OK,
    "Failed": ExitCode.FAILED,
    "Stopped": ExitCode.STOPPED,
}

_CONFLICT = {"ResourceInUse", "ResourceLimitExceeded", "ConflictException", "BucketAlreadyExists"}
_NOT_FOUND = {
    "ResourceNotFound",
    "ResourceNotFoundException",
    "NoSuchKey",
    "NoSuchBucket",
    "NoSuchUpload",
    "404",
}
_USAGE = {
    "ValidationException",
    "ValidationError",
    "SerializationException",
    "InvalidParameterException",
    "InvalidParameterValue",
    "InvalidBucketName",
    "UnknownOperationException",
}
_NOT_FOUND_TEXT = re.compile(r"not found|could not find|does not exist", re.IGNORECASE)
# SageMaker answers some conflicts with ValidationException ("Cannot create already existing
# model …", "Cannot update in-progress endpoint …"): they are conflicts all the same.
_CONFLICT_TEXT = re.compile(r"already exist|in-progress|in use", re.IGNORECASE)


def exit_code_for(aws_code: str, message: str) -> ExitCode:
    """The exit code for an AWS error code and message (the one place that decides)."""
    if aws_code in _NOT_FOUND:
        return ExitCode.NOT_FOUND
    if aws_code in _CONFLICT:
        return ExitCode.CONFLICT
    if aws_code in _USAGE:
        if _NOT_FOUND_TEXT.search(message):
            return ExitCode.NOT_FOUND
        return ExitCode.CONFLICT if _CONFLICT_TEXT.search(message) else ExitCode.USAGE
    return ExitCode.FAILED


class CliError(Exception):
    """An error the CLI reports as ``error: <code>: <message>`` and exits with ``exit_code``."""

    def __init__(self, code: str, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code


def usage(message: str) -> CliError:
    return CliError("UsageError", message, ExitCode.USAGE)


def fail(code: str, message: str, exit_code: ExitCode) -> NoReturn:
    raise CliError(code, message, exit_code)


def report(code: str, message: str) -> None:
    sys.stderr.write(f"error: {code}: {message}\n")
    sys.stderr.flush()


def exit_with_status(status: str, failed_code: str, desc: Mapping[str, Any]) -> NoReturn:
    """End the command with the exit code of a final status; a Failed one's reason is reported
    as ``failed_code`` first."""
    if status == "Failed":
        report(failed_code, str(desc.get("FailureReason", "")))
    raise typer.Exit(int(STATUS_EXIT.get(status, ExitCode.FAILED)))


def classify(exc: BaseException) -> CliError | None:
    """A CliError for the exceptions clients raise; None for anything unknown."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
        WaiterError,
    )

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or exc)
        return CliError(code, message, exit_code_for(code, message))
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError):
        return CliError("ServerUnreachable", str(exc), ExitCode.UNREACHABLE)
    if isinstance(exc, ReadTimeoutError):
        return CliError("ServerUnreachable", f"no answer in time: {exc}", ExitCode.UNREACHABLE)
    if isinstance(exc, NoCredentialsError):
        return CliError("NoCredentials", str(exc), ExitCode.USAGE)
    if isinstance(exc, WaiterError):
        return CliError("WaiterError", str(exc), ExitCode.FAILED)
    if isinstance(exc, FileNotFoundError):
        return CliError("FileNotFound", str(exc), ExitCode.USAGE)
    return None


@contextmanager
def handled() -> Iterator[None]:
    """Turn client errors into ``error: CODE: message`` on stderr and the table's exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except Exception as exc:
        known = classify(exc)
        if known is None:
            raise
        report(known.code, known.message)
        raise typer.Exit(int(known.exit_code)) from None


P = ParamSpec("P")
R = TypeVar("R")


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`handled` for command functions (keeps Typer's signature)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with handled():
            return fn(*args, **kwargs)

    return wrapper
