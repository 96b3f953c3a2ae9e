"""Label new rows with a saved model: the spark-submit entry point::

    spark-submit --master spark://HOST:7077 --py-files dist/spark_gmm.zip \\
        jobs/score_gmm.py --config conf/example.toml \\
        --set input.path=/data/events/date=2026-11-24 --set output.path=/data/scored/2026-11-24

Exit codes: 0 success; 2 bad configuration, bad input or a model/feature mismatch; 1 any
other failure.
"""

from __future__ import annotations

import sys

from spark_gmm.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
