"""Fit a Gaussian mixture as configured: the spark-submit entry point.

With no arguments it runs the embedded demo (Iris, written to ./output/demo)::

    python jobs/fit_gmm.py
    spark-gmm package --output dist/spark_gmm.zip
    spark-submit --master spark://HOST:7077 --py-files dist/spark_gmm.zip \\
        jobs/fit_gmm.py --config conf/example.toml --set output.path=/data/labelled

Exit codes: 0 success; 2 bad configuration or bad input; 1 any other failure.
"""

from __future__ import annotations

import sys

from spark_gmm.cli import main

if __name__ == "__main__":
    sys.exit(main(["fit", *sys.argv[1:]] if sys.argv[1:] else ["demo"]))
