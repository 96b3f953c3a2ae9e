"""The ``spark-gmm`` command line: thin wrappers that print results and map errors to codes.

Exit codes: 0 success; 2 bad configuration or bad input; 3 drift (``drift``, or ``score``
with ``drift.enabled``): a threshold was exceeded; 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_DRIFT = 0, 1, 2, 3


def _print_report(report: dict[str, Any]) -> None:
    units = report["original_units"]
    print(f"model {report['model_id']}: k={len(report['weights'])}, "
          f"{report['num_iter']} iterations (converged: {report['converged']})")
    print(f"log-likelihood {report['log_likelihood']:.4f}, BIC {report['bic']:.2f}, "
          f"AIC {report['aic']:.2f}")
    for j, (weight, mean) in enumerate(zip(report["weights"], units["means"])):
        print(f"  component {j}: weight {weight:.4f}, "
              f"mean [{', '.join(f'{v:.3f}' for v in mean)}]")
    print(f"cluster sizes: {report['cluster_sizes']}")
    print(f"rows: {report['rows_read']} read, {report['rows_labelled']} labelled, "
          f"{report['rows_quarantined']} quarantined")


def _session(config: Any, master: str | None, remote: str | None = None) -> Any:
    from .etl.session import build_session

    return build_session(config.spark.app_name, master or config.spark.master or None,
                         config.spark.conf, remote or config.spark.remote or None)


def run_demo_command(args: argparse.Namespace) -> int:
    from .etl.demo import demo_config, run_demo
    from .etl.locations import check_output, plain_paths_are_local

    check_output(os.path.join(args.output, "labelled"), "--output",
                 plain_paths_are_local({}, args.master, None))
    spark = _session(demo_config(), args.master)
    report = run_demo(spark, args.output)
    _print_report(report)
    print("\nspecies vs cluster:")
    k = len(report["weights"])
    print(f"  {'species':<12}" + "".join(f"{'c' + str(j):>6}" for j in range(k)))
    for species, counts in report["crosstab"]:
        print(f"  {species:<12}" + "".join(f"{c:>6}" for c in counts))
    print(f"\nlabelled Parquet: {args.output}/labelled; model: {args.output}/model")
    return EXIT_OK


def _check_locations(config: Any, command: str, master: str | None,
                     remote: str | None = None) -> None:
    # Before the session: a missing input or model is said in a second, not after the JVM's
    # start-up.
    from .etl.locations import check_job_locations

    check_job_locations(config, command, master or config.spark.master or None,
                        remote or config.spark.remote or None)


def run_job_command(args: argparse.Namespace) -> int:
    from .etl.config import load_config

    config = load_config(args.config, args.set or [])
    if args.command == "fit" and config.input.stream:
        from .errors import ConfigError

        raise ConfigError("input.stream labels new files in the score job; a fit reads every "
                          "row of input.path: set input.stream = false for the fit")
    _check_locations(config, args.command, args.master, args.remote)
    spark = _session(config, args.master, args.remote)
    if args.command == "fit":
        from .etl.fit_job import run_fit

        report = run_fit(spark, config)
        _print_report(report)
    else:
        from .etl.score_job import run_score

        report = run_score(spark, config)
        print(json.dumps(report, indent=2))
        if report.get("drift", {}).get("drifted"):
            return EXIT_DRIFT
    return EXIT_OK


def run_drift_command(args: argparse.Namespace) -> int:
    from .etl.drift import drift_config, run_drift

    if args.config:
        from .etl.config import load_config

        overrides = list(args.set or [])
        overrides += [f"model.path={args.model}"] if args.model else []
        overrides += [f"input.path={args.input}"] if args.input else []
        config = load_config(args.config, overrides)
        _check_locations(config, "drift", args.master)
        spark = _session(config, args.master)
    else:
        if not (args.model and args.input):
            from .errors import ConfigError

            raise ConfigError("spark-gmm drift needs --model and --input, or --config")
        from .etl.locations import check_artifact, check_input, plain_paths_are_local
        from .etl.session import build_session

        local = plain_paths_are_local({}, args.master, None)
        check_input(args.input, "--input", local)
        check_artifact(args.model, "--model", local)
        spark = build_session("spark-gmm-drift", args.master)
        config = drift_config(spark, args.model, args.input, args.format, list(args.set or []))
    report = run_drift(spark, config)
    print(json.dumps(report, indent=2))
    return EXIT_DRIFT if report["drifted"] else EXIT_OK


def run_report_command(args: argparse.Namespace) -> int:
    from .etl.locations import check_artifact, check_output, plain_paths_are_local
    from .etl.report import run_report
    from .etl.session import build_session
    from .report.page import require_matplotlib

    require_matplotlib()  # before the JVM starts: the fix is an install
    check_artifact(args.artifact, "the ARTIFACT argument",
                   plain_paths_are_local({}, args.master, None))
    check_output(os.path.join(args.output, "report.html"), "--output", True)
    spark = build_session("spark-gmm-report", args.master)
    print(run_report(spark, args.artifact, args.output, "the ARTIFACT argument"))
    return EXIT_OK


def run_package_command(args: argparse.Namespace) -> int:
    from .etl.locations import check_output
    from .etl.package import build_archive

    check_output(args.output, "--output", True)
    print(build_archive(args.output))
    return EXIT_OK


def run_params_command(args: argparse.Namespace) -> int:
    from .fit.param_rules import BAYESIAN_PARAMETERS
    from .ml.params import parameter_table_markdown

    sys.stdout.write(parameter_table_markdown(BAYESIAN_PARAMETERS if args.bayesian else None))
    return EXIT_OK


def run_bench_command(args: argparse.Namespace) -> int:
    import dataclasses

    if args.input:
        from .etl.locations import check_input, plain_paths_are_local

        check_input(args.input, "--input", plain_paths_are_local({}, args.master, args.remote))
    from .bench.benchmark import missing_optional_modules, run_benchmark
    from .bench.options import bench_spec
    from .bench.report import format_table
    from .etl.session import build_session

    spec = bench_spec(args)  # options this build cannot run: an error before any work
    missing = missing_optional_modules(spec)
    if missing:
        # Said before any work, so nobody waits a minute to learn a column is missing.
        print(f"spark-gmm bench: {', '.join(missing)} not installed (pip install "
              "'spark-gmm[bench]'); skipping " + ", ".join(
                  {"sklearn": "the scikit-learn column",
                   "psutil": "the CPU and memory readings"}[m] for m in missing),
              file=sys.stderr)
        spec = dataclasses.replace(spec, run_sklearn=spec.run_sklearn and "sklearn" not in missing,
                                   probe_processes="psutil" not in missing)
    from .bench.machine import commit

    measured_commit = commit()  # before any work: the code this run loads and measures
    if args.remote:
        from .bench.connect import classic_benchmark, format_connect, run_connect_benchmark

        # The classic figures first, in a process of their own, before this one turns Connect.
        classic = (None if args.skip_classic
                   else classic_benchmark(spec, args.master or "local[2]"))
        spark = build_session("spark-gmm-benchmark", remote=args.remote)
        results = run_connect_benchmark(spark, spec, classic)
        print(format_connect(results))
        print(f"results: {args.work_dir}/connect_benchmark.json")
    else:
        spark = build_session("spark-gmm-benchmark", args.master)
        results = run_benchmark(spark, spec)
        print(format_table(results, unavailable=missing))
        from .bench.optional import optional_printouts

        for printout in optional_printouts(results, missing):  # --skewed, --bayesian, ...
            print("\n" + printout)
        print(f"results: {args.work_dir}/benchmark.json")
    if args.output:
        from .bench.machine import result_record, write_result

        parameters = {k: v for k, v in vars(args).items() if k not in ("handler", "command")}
        write_result(args.output, result_record(results, parameters, measured_commit))
        print(f"result file (commit, date, machine, parameters, every round): {args.output}")
    return EXIT_OK


_JOB_EXITS = ("0 success; 2 bad configuration or input: the message names the key, column or "
              "path and the fix, do not retry; 1 any other failure, worth a retry")
# Each subcommand's --help: what it does, an example, the config it reads, its exit codes.
_COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "demo": ("Fit Fisher's Iris measurements (shipped inside the package) with three "
             "full-covariance components; print the model, the cluster sizes and a species "
             "x cluster table, and write labelled Parquet and the model.",
             "spark-gmm demo --output output/demo",
             "none: the settings are built in (conf/demo.toml holds the same)",
             "0 success; 1 failure"),
    "fit": ("Read the input, fit a GaussianMixture (with [model] estimator = \"bayesian\": a "
            "BayesianGaussianMixture), write labelled Parquet and the artifact, atomically.",
            "spark-gmm fit --config conf/example.toml --set model.k=12",
            "--config FILE (TOML; conf/example.toml documents every key)", _JOB_EXITS),
    "score": ("Label new rows with a saved model artifact and write them as Parquet, with "
              "the same row accounting as the fit; optional drift checks.",
              "spark-gmm score --config conf/example.toml --set input.path=/data/new",
              "--config FILE (TOML; conf/example.toml documents every key)",
              _JOB_EXITS + "; 3 a drift threshold was exceeded (the output is written)"),
    "drift": ("Check new rows against a model artifact: log-likelihood drop, component "
              "shares (PSI) and rows below the training's low quantile.",
              "spark-gmm drift --model output/demo/model --input /data/new.parquet",
              "--model and --input, or --config FILE with [input] and [drift]",
              _JOB_EXITS + "; 3 a drift threshold was exceeded"),
    "report": ("Write the HTML fit report of a model artifact (one self-contained page); "
               "needs the 'report' extra (matplotlib).",
               "spark-gmm report output/demo/model --output output/report",
               "none: the artifact holds what the report draws", _JOB_EXITS),
    "bench": ("Benchmark spark-gmm against Spark MLlib and scikit-learn on seeded synthetic "
              "data (or your Parquet), in interleaved rounds; needs the 'bench' extra.",
              "spark-gmm bench --n 1000000 --d 10 --k 8 --master 'local[2]' "
              "--output result.json",
              "none: the options below",
              "0 success; 2 an option the estimator or the session cannot take (e.g. "
              "--missing without missingFeatures, --bayesian with --remote) or an --input "
              "that cannot be read, before any work; 1 any other failure"),
    "params": ("Print the estimator's parameter table (Markdown), as in docs/parameters.md.",
               "spark-gmm params", "none", "0 success"),
    "package": ("Zip the spark_gmm package for spark-submit --py-files.",
                "spark-gmm package --output dist/spark_gmm.zip", "none",
                "0 success; 1 failure"),
}


def _command(commands: Any, name: str, summary: str) -> argparse.ArgumentParser:
    description, example, config, exits = _COMMANDS[name]
    epilog = "\n\n".join([f"example:\n  {example}", textwrap.fill(f"config: {config}", 79),
                          textwrap.fill(f"exit codes: {exits}", 79)])
    command = commands.add_parser(name, help=summary,
                                  description=textwrap.fill(description, 79), epilog=epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("--verbose", action="store_true",
                         help="log at DEBUG (every EM iteration), and show the trace behind "
                              "an error's one-line message")
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spark-gmm", description="Gaussian mixture models fitted by distributed EM on "
        "Apache Spark: the jobs, the demo, the benchmark and tools.",
        epilog=f"exit codes: {_JOB_EXITS}; 3 drift (drift, or score with drift.enabled). "
        "spark-gmm COMMAND --help says more.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = _command(commands, "demo", "fit the embedded Iris data and print the model")
    demo.add_argument("--output", default="output/demo", help="output directory")
    demo.add_argument("--master", default=None, help="Spark master (default: local[*])")
    demo.set_defaults(handler=run_demo_command)
    for name, text in (("fit", "fit a model as configured"),
                       ("score", "label new rows with a saved model")):
        job = _command(commands, name, text)
        job.add_argument("--config", required=True, help="TOML config file")
        job.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                         help="override a config value (repeatable)")
        job.add_argument("--master", default=None, help="Spark master (default: config)")
        job.add_argument("--remote", default=None,
                         help="Spark Connect address sc://HOST:PORT (default: [spark] remote)")
        job.set_defaults(handler=run_job_command)
    drift = _command(commands, "drift", "check new rows against a model artifact "
                     "(exit 3 when a drift threshold is exceeded)")
    drift.add_argument("--model", default="", help="model artifact directory (fit job)")
    drift.add_argument("--input", default="", help="Parquet/CSV rows to check")
    drift.add_argument("--format", default="parquet", choices=("parquet", "csv"),
                       help="format of --input (default: parquet)")
    drift.add_argument("--config", default="", help="TOML config ([input], [drift], ...)")
    drift.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override a config value, e.g. drift.max_psi=0.1 (repeatable)")
    drift.add_argument("--master", default=None, help="Spark master (default: local[*])")
    drift.set_defaults(handler=run_drift_command)
    report = _command(commands, "report", "write the HTML fit report of a model artifact "
                      "(needs the 'report' extra: matplotlib)")
    report.add_argument("artifact", help="model artifact directory (fit job)")
    report.add_argument("--output", required=True, help="local directory for report.html")
    report.add_argument("--master", default=None, help="Spark master (default: local[*])")
    report.set_defaults(handler=run_report_command)
    try:
        from .bench.options import add_bench_options  # argparse only: no Spark
    except ModuleNotFoundError:
        # The spark-submit archive (`spark-gmm package`) leaves the benchmark out.
        add_bench_options = None
    if add_bench_options is not None:
        bench = _command(commands, "bench", "benchmark against MLlib and scikit-learn")
        add_bench_options(bench)
        bench.set_defaults(handler=run_bench_command)
    params = _command(commands, "params", "print the estimator's parameter table "
                      "(Markdown, as in docs/parameters.md)")
    params.add_argument("--bayesian", action="store_true",
                        help="BayesianGaussianMixture's table instead of GaussianMixture's")
    params.set_defaults(handler=run_params_command)
    package = _command(commands, "package", "zip spark_gmm for spark-submit --py-files")
    package.add_argument("--output", default="dist/spark_gmm.zip",
                         help="the zip file to write (default: dist/spark_gmm.zip)")
    package.set_defaults(handler=run_package_command)
    return parser


def configure_logging(verbose: bool) -> None:
    """The command line's log: the project's lines at INFO (DEBUG with ``verbose``), and
    Spark's JVMs started quiet unless ``verbose``."""
    from .etl.session import show_spark_start_up

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if verbose:
        logging.getLogger("spark_gmm").setLevel(logging.DEBUG)
    show_spark_start_up(verbose)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spark-gmm`` console script and of ``jobs/*.py``."""
    from .errors import UserInputError

    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.handler(args))
    except UserInputError as error:
        # The trace (Spark's, for a location Spark could not use) only at DEBUG: --verbose.
        # Named, not __name__: run as python -m spark_gmm.cli, that is __main__.
        logging.getLogger("spark_gmm.cli").debug("the trace behind the error below",
                                                 exc_info=True)
        print(f"spark-gmm: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:
        logging.getLogger(__name__).exception("spark-gmm failed")
        print(f"spark-gmm: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if "pyspark.sql.connect" in sys.modules:  # only a Connect client can have started one
            from .etl.session import stop_started_sessions

            stop_started_sessions()


if __name__ == "__main__":
    sys.exit(main())
