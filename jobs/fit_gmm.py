"""Fit a Gaussian mixture: the spark-submit entry point.

With no arguments it runs the embedded demo (Iris, written to ./output/demo)::

    python jobs/fit_gmm.py
    spark-submit --master spark://host:7077 --py-files dist/spark_gmm.zip jobs/fit_gmm.py

Exit codes: 0 success; 2 bad configuration or bad input; 1 any other failure.
"""

from __future__ import annotations

import sys

from spark_gmm.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["demo"]))
