"""Every exception spark-gmm raises on purpose; each message says what the user should change.

This module imports nothing of spark-gmm (every room may raise these) and nothing beyond the
standard library, so ``import spark_gmm.kernels`` stays free of pyspark and pyarrow.
Command lines map :class:`UserInputError` subclasses to exit code 2 ("fix the config or the
data, do not retry") and everything else to 1.
"""

from __future__ import annotations


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
