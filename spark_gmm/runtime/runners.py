"""The pass runner of a fit, chosen once when the fit starts (see :mod:`.passes`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark import SparkContext
from pyspark.sql import SparkSession

from .block_store import BlockStore
from .connect import ConnectPassRunner, ConnectStore
from .passes import JobPassRunner, PassRunner, TaskHook
from .resident import DEFAULT_PASS_TIMEOUT_SECONDS, ENABLED_CONF, PASS_TIMEOUT_CONF
from .resident_runner import ResidentPassRunner


@dataclass(frozen=True)
class ResidentSettings:
    """The Spark settings of resident tasks, as a fit reads them when it starts."""

    enabled: bool
    pass_timeout: float

    @classmethod
    def of(cls, sc: SparkContext) -> ResidentSettings:
        """The active session's settings, falling back to the SparkContext's."""
        session = SparkSession.getActiveSession()

        def setting(name: str) -> str | None:
            return session.conf.get(name, None) if session is not None else None

        enabled = setting(ENABLED_CONF) or sc.getConf().get(ENABLED_CONF, "true")
        timeout = setting(PASS_TIMEOUT_CONF) or DEFAULT_PASS_TIMEOUT_SECONDS
        return cls(enabled.strip().lower() == "true", float(timeout))


def pass_runner(store: BlockStore | ConnectStore, center: np.ndarray, depth: int,
                shape: tuple[int, int], task_hook: TaskHook | None = None) -> PassRunner:
    """The runner of a fit's passes: Connect queries for a Connect store; resident tasks
    unless ``spark.gmm.residentTasks.enabled`` is false; one Spark job per pass otherwise.

    Parameters
    ----------
    store : BlockStore or ConnectStore
        Written already (its first pass ran).
    center : ndarray of shape (D,)
        The data mean; the fit's requests are expressed relative to it.
    depth : int
        ``treeReduce`` depth (the ``aggregationDepth`` param).
    shape : (int, int)
        The most models, and components per model, one statistics pass computes.
    task_hook : callable or None
        Called in every task before it folds (see :data:`~.passes.TaskHook`).
    """
    if isinstance(store, ConnectStore):
        return ConnectPassRunner(store, center, task_hook)
    settings = ResidentSettings.of(store.handles.context)
    if not settings.enabled:
        return JobPassRunner(store, center, depth, task_hook)
    return ResidentPassRunner(store, center, depth, shape, settings.pass_timeout, task_hook)
