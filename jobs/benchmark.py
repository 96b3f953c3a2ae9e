"""Benchmark spark-gmm against Spark MLlib and scikit-learn in one run::

    python jobs/benchmark.py --n 1000000 --d 10 --k 8 --partitions 2 --iterations 10
    spark-submit --master local[2] jobs/benchmark.py --n 200000 --d 50 --k 16

Both need spark-gmm installed with its bench extra (scikit-learn, psutil).

Prints a table of per-iteration and end-to-end seconds, final log-likelihoods and ratios, and
writes them to <work-dir>/benchmark.json. Exit codes as for the other jobs.
"""

from __future__ import annotations

import sys

from spark_gmm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
