"""One-time set-up of each Python worker process that runs our tasks."""

from __future__ import annotations

import gc

_prepared = False


def prepare_python_worker() -> None:
    """Once per worker process: one BLAS thread, and long-lived objects out of the GC's sight.

    Spark already runs one task per core, so a multi-threaded BLAS would oversubscribe.

    PySpark's daemon runs a full ``gc.collect()`` after every task (``pyspark/daemon.py``).
    With numpy, pyarrow and pyspark loaded that walks ~10⁵ long-lived module objects: about
    100 ms per task on our 2-core CI machines, more than the statistics of a 10⁵-row block.
    ``gc.freeze()`` moves the objects alive now (imported modules, the worker's state) to the
    permanent generation, so the per-task collection only walks what later tasks allocate.
    """
    global _prepared
    if _prepared:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    gc.collect()
    gc.freeze()
    _prepared = True
