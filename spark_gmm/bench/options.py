"""The options of ``spark-gmm bench`` and the benchmark spec they make (argparse only at
import: the command line builds its parser without loading Spark)."""

from __future__ import annotations

import argparse
from typing import Any


def add_bench_options(bench: argparse.ArgumentParser) -> None:
    """Every option of ``spark-gmm bench`` on its sub-parser ``bench``."""
    for flag, default, text in (
            ("--n", 100_000, "rows of synthetic data"), ("--d", 10, "features"),
            ("--k", 8, "components, of the data and of every fit"),
            ("--partitions", 2, "Parquet files the data are written as"),
            ("--iterations", 10, "EM iterations of every timed fit"),
            ("--seed", 0, "seed of the data and of the starts"),
            ("--rounds", 3, "interleaved rounds (ours and MLlib back to back); medians"),
            ("--init-quality-seeds", 0, "seeds on which our k-means|| is compared with "
             "MLlib's KMeans (0: none)")):
        bench.add_argument(flag, type=int, default=default, help=f"{text} (default: {default})")
    bench.add_argument("--input", default="", help="existing Parquet (numeric columns)")
    bench.add_argument("--work-dir", default="output/benchmark",
                       help="where the data and benchmark.json go (default: output/benchmark)")
    bench.add_argument("--master", default=None, help="Spark master (default: local[*])")
    bench.add_argument("--skip-mllib", action="store_true", help="leave MLlib out")
    bench.add_argument("--skip-sklearn", action="store_true", help="leave scikit-learn out")
    bench.add_argument("--skip-scoring", action="store_true",
                       help="no transform + write rounds (they dominate at tens of millions "
                            "of rows)")
    bench.add_argument("--fit-multiple", action="store_true",
                       help="also time fitMultiple (6 and 20 models) against separate fits "
                            "and MLlib")
    bench.add_argument("--skewed", action="store_true",
                       help="also fit the rows written as one Parquet row group (read as "
                            "partitions of [N, 0] rows) against them evenly partitioned, "
                            "with balanceRows on and off")
    bench.add_argument("--bayesian", action="store_true",
                       help="also time MAP-EM (prior='conjugate') and BayesianGaussianMixture "
                            "per iteration against EM, and scikit-learn's "
                            "BayesianGaussianMixture, in interleaved rounds")
    bench.add_argument("--missing", action="store_true",
                       help="also time an iteration on the rows with 30%% of them missing 1-2 "
                            "features (missingFeatures='marginalize') against complete rows")
    bench.add_argument("--noise", action="store_true",
                       help="also time an iteration with a noise component (noise=True) "
                            "against the plain fit")
    bench.add_argument("--remote", default=None,
                       help="benchmark through Spark Connect (sc://HOST:PORT, or local[N] for a "
                            "local server): ours and MLlib on Connect, the classic figures "
                            "from a child process first")
    bench.add_argument("--skip-classic", action="store_true",
                       help="with --remote: no classic session figures")
    bench.add_argument("--no-warm-up", action="store_true",
                       help="time cold: the first system also pays JVM and worker start-up")
    bench.add_argument("--output", default="", metavar="FILE.json",
                       help="also write a result file: commit, UTC date, machine (CPU, BLAS, "
                            "versions), these parameters and every round's numbers")


def bench_spec(args: argparse.Namespace) -> Any:
    """The :class:`~spark_gmm.bench.benchmark.BenchmarkSpec` of the parsed options.

    Raises
    ------
    UserInputError
        An option this build cannot run (``--missing``/``--noise`` without the estimator's
        param), or one that cannot combine with ``--remote``; before any work.
    """
    from ..errors import UserInputError
    from .benchmark import BenchmarkSpec
    from .real_rows import unsupported

    extras = [name for name in ("bayesian", "missing", "noise") if getattr(args, name)]
    if extras and args.remote:
        raise UserInputError(f"--{extras[0]} runs in a classic session only: leave out "
                             "--remote")
    problems = unsupported([name for name in ("missing", "noise") if getattr(args, name)])
    if problems:
        raise UserInputError("; ".join(problems))
    return BenchmarkSpec(n=args.n, d=args.d, k=args.k, partitions=args.partitions,
                         iterations=args.iterations, seed=args.seed, input_path=args.input,
                         work_dir=args.work_dir, run_mllib=not args.skip_mllib,
                         run_sklearn=not args.skip_sklearn, run_scoring=not args.skip_scoring,
                         fit_multiple=args.fit_multiple, skewed=args.skewed,
                         bayesian=args.bayesian, missing=args.missing, noise=args.noise,
                         warm_up=not args.no_warm_up,
                         rounds=args.rounds, init_quality_seeds=args.init_quality_seeds)
