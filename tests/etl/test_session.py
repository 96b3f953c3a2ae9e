"""The command line's Spark sessions start quiet: from the JVM's first line, only the
project's own log lines and Spark's real warnings; ``--verbose`` brings Spark's start-up
logs back."""

from __future__ import annotations

import filecmp
import os
import pathlib
import subprocess
import sys

import pytest

from spark_gmm.etl.session import QUIET_LOG4J

# A session built as the command line builds it, in a process of its own (a JVM starts once
# per process), with the command line's logging.
_START = """
import sys
from spark_gmm.cli import configure_logging
from spark_gmm.etl.session import build_session
configure_logging(verbose=sys.argv[1] == "verbose")
spark = build_session("quiet-test", "local[1]")
print(spark.range(3).count())
spark.stop()
"""


def _start(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _START, mode], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYSPARK_PYTHON": sys.executable})


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_only_the_projects_lines_unless_verbose(mode) -> None:
    done = _start(mode)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    foreign = [line for line in lines if " spark_gmm." not in line]
    if mode == "quiet":
        assert lines and " INFO spark_gmm.etl.session: starting the Spark session" in lines[0]
        assert foreign == []
    else:  # what Spark prints when left alone, as before the quiet start
        assert any("Spark's default log4j profile" in line for line in foreign), foreign


def test_the_packaged_configuration_is_the_one_documented_for_spark_submit() -> None:
    documented = pathlib.Path(__file__).parents[2] / "conf" / "log4j2.properties"
    assert filecmp.cmp(QUIET_LOG4J, documented, shallow=False)
