"""One local[2] SparkSession shared by every test that asks for ``spark``."""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Iterator

import pytest

# Python workers otherwise start the system python, which lacks this venv's packages.
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
# Every JVM the tests start (this session, job subprocesses, the standalone cluster) is
# short-lived; on 2 cores C2 compilation took more CPU than it gave back (a job subprocess
# ran 46 s with it, 39 s without).
os.environ["JAVA_TOOL_OPTIONS"] = "-XX:TieredStopAtLevel=1"


def pytest_ignore_collect(collection_path: pathlib.Path, config: pytest.Config) -> bool | None:
    # tests/connect runs in a pytest process of its own (Connect mode is process-wide): it
    # is collected only when named on the command line.
    if collection_path.name != "connect" or collection_path.parent.name != "tests":
        return None
    named = any("connect" in pathlib.Path(arg.split("::")[0]).parts for arg in config.args)
    return None if named else True


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("spark-gmm-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        # Unix sockets between the JVM and Python workers avoid ~40 ms TCP stalls per task.
        .config("spark.python.unix.domain.socket.enabled", "true")
        .config("spark.sql.warehouse.dir", os.path.join(os.getcwd(), ".pytest_cache", "warehouse"))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def one_job_per_pass(spark) -> Iterator[None]:
    """Every EM pass of fits in this test runs as a Spark job of its own (no resident tasks),
    so that the test may run Spark jobs of its own between passes."""
    from spark_gmm.runtime.resident import resident_tasks_setting

    with resident_tasks_setting(spark, enabled=False):
        yield
