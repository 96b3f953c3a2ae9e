"""A Spark Connect session for this directory's tests, against a local server started from
the pyspark wheel. Connect mode is process-wide and the local server refuses to start
beside a classic session, so these tests run in a pytest process of their own:
``pytest tests/connect`` (the main run skips this directory, see tests/conftest.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
os.environ["JAVA_TOOL_OPTIONS"] = "-XX:TieredStopAtLevel=1"


@pytest.fixture(scope="session")
def connect() -> Iterator[object]:
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.remote("local[2]")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .getOrCreate())
    yield session
    session.stop()
