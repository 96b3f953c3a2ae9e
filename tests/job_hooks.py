"""Faults and pauses the tests inject into fits: task hooks handed to a fit's pass runner
(shipped to the executors inside the tasks' closures) and a pause inside checkpoint writes.

In-process tests install them with pytest's ``monkeypatch`` (:func:`install`). Tests that
run a job in a process of their own run this file as that job's entry point instead of
``spark_gmm.cli`` or ``jobs/fit_gmm.py``; it installs the hooks named on its command line,
then runs the job::

    python tests/job_hooks.py --fail-first-attempt 1 --checkpoint-pause 0.1 -- fit --config c

The library reads no environment variable for any of this.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from pyspark import TaskContext, cloudpickle

import spark_gmm.etl.rows as job_rows
import spark_gmm.fit.driver as driver
from spark_gmm.fit.checkpoint import write_checkpoint
from spark_gmm.runtime.passes import PassRunner, TaskHook
from spark_gmm.runtime.runners import pass_runner

# The hooks travel by value: executors need not import this file (as a script, it is
# __main__, whose objects travel by value anyway).
if __name__ != "__main__":
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


class FailFirstAttempt:
    """The task of one partition fails on its first attempt of any pass (Spark retries it)."""

    def __init__(self, partition: int) -> None:
        self.partition = partition

    def __call__(self, runner: str, request: Any) -> None:
        context = TaskContext.get()
        if (context is not None and context.partitionId() == self.partition
                and context.attemptNumber() == 0):
            raise RuntimeError(f"injected test fault in partition {self.partition} "
                               "(first attempt)")


class HangInResidentTask:
    """Resident task 0 sleeps ``seconds`` inside every pass (a hung task)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, runner: str, request: Any) -> None:
        context = TaskContext.get()
        if runner == "resident" and context is not None and context.partitionId() == 0:
            time.sleep(self.seconds)


def pausing_checkpoint_writes(seconds: float) -> Callable[..., None]:
    """``write_checkpoint`` pausing between writing the new state and renaming it (a test
    can kill the process in the middle of a checkpoint write, or slow a fit down)."""
    return partial(write_checkpoint, before_replace=partial(time.sleep, seconds))


def _killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after_publishing_batch(setattr: Callable[[Any, str, Any], None], batch: int) -> None:
    """The streaming score job dies (SIGKILL) right after it has published micro-batch
    ``batch``'s output, before Spark records the batch as done."""
    original = job_rows.write_outputs

    def write_then_die(spark: Any, config: Any, *args: Any) -> dict[str, int]:
        rows = original(spark, config, *args)
        if config.output.path.rstrip("/").endswith(f"batch={batch}"):
            _killed()
        return rows

    setattr(job_rows, "write_outputs", write_then_die)


def kill_while_writing_batch(setattr: Callable[[Any, str, Any], None], batch: int) -> None:
    """The streaming score job dies (SIGKILL) when micro-batch ``batch``'s rows are written
    to their staging directory but not yet renamed into place."""
    original = job_rows.atomic_publish

    def publish(spark: Any, final_path: str, write: Callable[[str], None],
                key: str = "") -> None:
        def write_then_die(staging: str) -> None:
            write(staging)
            _killed()

        dying = key == "output.path" and final_path.rstrip("/").endswith(f"batch={batch}")
        original(spark, final_path, write_then_die if dying else write, key)

    setattr(job_rows, "atomic_publish", publish)


def install(setattr: Callable[[Any, str, Any], None], task_hook: TaskHook | None = None,
            checkpoint_pause: float = 0.0) -> None:
    """Make the fits of this process use ``task_hook`` and pause checkpoint writes;
    ``setattr`` is the builtin, or ``monkeypatch.setattr`` (undone after the test)."""
    if task_hook is not None:
        setattr(driver, "pass_runner", partial(pass_runner, task_hook=task_hook))
    if checkpoint_pause:
        setattr(driver, "write_checkpoint", pausing_checkpoint_writes(checkpoint_pause))


@contextmanager
def recorded_runners() -> Iterator[list[PassRunner]]:
    """The pass runners the fits inside create, to read their counters after."""
    made: list[PassRunner] = []
    original = driver.pass_runner

    def recording(*args: Any, **kwargs: Any) -> PassRunner:
        runner = original(*args, **kwargs)
        made.append(runner)
        return runner

    driver.pass_runner = recording
    try:
        yield made
    finally:
        driver.pass_runner = original


def entry_command(*hooks: str) -> list[str]:
    """The command that runs a job with these hook options (``--`` then the job's own
    arguments follow)."""
    return [sys.executable, __file__, *hooks, "--"]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fail-first-attempt", type=int, metavar="PARTITION")
    parser.add_argument("--checkpoint-pause", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--kill-after-publishing-batch", type=int, metavar="BATCH")
    parser.add_argument("--kill-while-writing-batch", type=int, metavar="BATCH")
    parser.add_argument("job", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.kill_after_publishing_batch is not None:
        kill_after_publishing_batch(setattr, args.kill_after_publishing_batch)
    if args.kill_while_writing_batch is not None:
        kill_while_writing_batch(setattr, args.kill_while_writing_batch)
    job = args.job[1:] if args.job[:1] == ["--"] else args.job
    hook = (FailFirstAttempt(args.fail_first_attempt)
            if args.fail_first_attempt is not None else None)
    install(setattr, hook, args.checkpoint_pause)
    from spark_gmm.cli import main as run_job

    return run_job(job)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
