"""Errors raised by the numeric kernels; each says what the user should change."""

from __future__ import annotations


class CovarianceError(ValueError):
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
