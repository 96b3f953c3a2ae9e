"""The one-time set-up of the Python workers, checked inside real Spark tasks."""

from __future__ import annotations

from collections.abc import Iterator


def _worker_state(_: Iterator[int]) -> Iterator[tuple[int, int]]:
    import gc

    from threadpoolctl import threadpool_info

    from spark_gmm.runtime.worker import prepare_python_worker

    prepare_python_worker()
    blas_threads = max((pool["num_threads"] for pool in threadpool_info()), default=1)
    yield gc.get_freeze_count(), blas_threads


def test_workers_freeze_their_long_lived_objects_and_use_one_blas_thread(spark) -> None:
    states = spark.sparkContext.parallelize(range(4), 4).mapPartitions(_worker_state).collect()
    assert len(states) == 4
    for frozen, blas_threads in states:
        # numpy, pyarrow and pyspark alone are well over 10⁴ objects
        assert frozen > 10_000
        assert blas_threads == 1
