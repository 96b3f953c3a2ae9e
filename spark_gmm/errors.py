"""Every exception spark-gmm raises on purpose; each message says what the user should change.

This module imports nothing of spark-gmm (every room may raise these) and nothing beyond the
standard library, so ``import spark_gmm.kernels`` stays free of pyspark and pyarrow.
Command lines map :class:`UserInputError` subclasses to exit code 2 ("fix the config or the
data, do not retry") and everything else to 1. The functions at the end read a failure that
came through Py4J (its Spark error condition, its Java causes) to say its cause in words.
"""

from __future__ import annotations

import json
import re


class UserInputError(ValueError):
    """Base of the errors that only a change of input, config or parameters can fix."""


class InvalidInputError(UserInputError):
    """The input data cannot be used as given; the message says what to change."""


class CovarianceError(UserInputError):
    """A covariance matrix is not positive definite (its Cholesky factorisation failed)."""

    def __init__(self, component: int | None) -> None:
        self.component = component
        where = "the shared (tied) covariance" if component is None else f"component {component}"
        super().__init__(
            f"The covariance of {where} is not positive definite (Cholesky factorisation "
            "failed). This happens with degenerate data (duplicated or collinear rows) or too "
            "many components. Increase regCovar (e.g. to 1e-4), reduce k, or standardise the "
            "features."
        )


class ConfigError(UserInputError):
    """A job configuration is invalid; the message names the key and the fix."""


class ModelFormatError(UserInputError):
    """A directory is not a valid saved spark-gmm model (nothing in it was executed)."""


class CheckpointMismatchError(UserInputError):
    """The checkpoint belongs to a different fit (data or parameters changed)."""


class NonFiniteLikelihoodError(FloatingPointError):
    """The log-likelihood became NaN or infinite during EM."""


class InputChangedError(RuntimeError):
    """Rows read again mid-fit (a lost block file or executor) differ from what the first
    pass read: the input changed under the fit. Not a UserInputError: rerunning once the
    upstream writer is done fixes it (exit code 1 in the jobs)."""


# What a failure of the JVM side says, read without importing py4j or pyspark: the words
# that mark a location that is not there or not readable/writable, in Java's exception
# classes and messages as Hadoop's local, HDFS and cloud filesystems word them.
_PERMISSION_MARKS = ("permission denied", "accessdeniedexception", "accesscontrolexception",
                     "mkdirs failed")
_MISSING_MARKS = ("filenotfoundexception", "[path_not_found]", "does not exist")


def failure_chain(error: BaseException) -> list[str]:
    """The messages of ``error`` and of its causes, Python's and (through Py4J) Java's, each
    as ``Class: message``, outermost first."""
    chain: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        java = getattr(current, "java_exception", None)
        chain.append(f"{type(current).__name__}: {current}" if java is None else "")
        while java is not None and len(chain) < 50:
            try:
                chain.append(f"{java.getClass().getName()}: {java.getMessage()}")
                java = java.getCause()
            except Exception:  # the gateway is gone: what Python holds is all there is
                break
        current = current.__cause__ or current.__context__
    return [link for link in chain if link]


def spark_condition(error: BaseException) -> str:
    """Spark's error condition of ``error`` or of a cause (``FAILED_READ_FILE.NO_HINT``),
    or ``''``."""
    getter = getattr(error, "getCondition", None)
    condition = getter() if callable(getter) else None
    if condition:
        return str(condition)
    for link in failure_chain(error):
        found = re.search(r"\[([A-Z][A-Z_]*(?:\.[A-Z_]+)?)\]", link)
        if found:
            return found.group(1)
    return ""


def is_permission_denied(error: BaseException) -> bool:
    """Whether ``error`` (or a cause) says a location could not be read or written for lack
    of permission."""
    return isinstance(error, PermissionError) or any(
        mark in link.lower() for link in failure_chain(error) for mark in _PERMISSION_MARKS)


def is_missing(error: BaseException) -> bool:
    """Whether ``error`` (or a cause) says a location does not exist."""
    return not is_permission_denied(error) and (isinstance(error, FileNotFoundError) or any(
        mark in link.lower() for link in failure_chain(error) for mark in _MISSING_MARKS))


def cause_in_words(error: BaseException) -> str:
    """Why reading or writing a location failed, in words a user acts on (no exception class
    names): ``permission denied``, ``it does not exist``, ``it is not valid JSON``, or the
    innermost cause's own message."""
    if is_permission_denied(error):
        return "permission denied"
    if is_missing(error):
        return "it does not exist"
    for current in (error, error.__cause__, error.__context__):
        if isinstance(current, json.JSONDecodeError):
            return f"it is not valid JSON ({current.msg}, line {current.lineno})"
        if isinstance(current, UnicodeDecodeError):
            return "it is not UTF-8 text"
        if isinstance(current, KeyError):
            return f"it lacks the key {current.args[0]!r}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    if spark_condition(error).endswith("CANNOT_READ_FILE_FOOTER"):
        return "it is not a Parquet file"
    innermost = failure_chain(error)[-1] if failure_chain(error) else str(error)
    words = innermost.split(": ", 1)[-1].splitlines()[0] if innermost else ""
    return re.sub(r"^\[[A-Z_.]+\]\s*", "", words).strip()[:200] or "an unexpected error"
