"""The configured locations, checked before Spark starts.

A missing input or model, or an output directory this user cannot write, is reported in well
under a second instead of after the JVM's start-up (10-15 s), with the messages Spark's
own failures get later (:mod:`.io`, :mod:`.artifact`). Checked here:

- local paths: ``file:`` URIs, and paths without a scheme when they name local files
  (:func:`plain_paths_are_local`). The input exists (a glob matches something) and is
  readable; a model artifact has a readable ``features.json`` and ``model/metadata``; the
  nearest existing directory of an output is writable.
- a model artifact at a remote URI (``s3://``, ``gs://``, ...) through pyarrow's filesystem
  layer, when pyarrow knows the scheme and answers within a few seconds. Otherwise nothing is
  said here and Spark reports the problem. HDFS is left to Spark: pyarrow's HDFS client
  loads a JVM into this process, which is the wait this module avoids.

This module imports neither pyspark nor pyarrow at import time.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
from collections.abc import Mapping

from ..errors import InvalidInputError
from .config import JobConfig

logger = logging.getLogger(__name__)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_REMOTE_SECONDS = 10.0  # a remote store that has not answered by then is left to Spark
_JVM_SCHEMES = ("hdfs", "viewfs")
ARTIFACT_FILES = ("features.json", "model/metadata")
INPUT_ABSENT = "does not exist; check {key} (a file, directory or glob)"
UNREADABLE = "is not readable (permission denied); check {key}, or let this user read it"


def artifact_problem(location: str, key: str, problem: str) -> InvalidInputError:
    """The error for a model artifact that cannot be used, ``problem`` in words."""
    return InvalidInputError(f"the model artifact {location!r} {problem}; check {key} (a "
                             "directory the fit job wrote)")


def unwritable(location: str, key: str, why: str = "permission denied") -> InvalidInputError:
    """The error for an output location that cannot be written, ``why`` in words."""
    fix = " or let this user write its directory" if "permission denied" in why else ""
    return InvalidInputError(f"cannot write {key} {location!r}: {why}; choose another {key}"
                             + fix)


def local_path(location: str, plain_is_local: bool) -> str | None:
    """The local file ``location`` names (``file:`` URI, or a path without scheme when
    ``plain_is_local``), or None when it is not (known to be) on this machine."""
    match = _SCHEME.match(location)
    if match is None:
        return location if plain_is_local else None
    if match.group(1).lower() == "file" and location[5:].startswith("/"):
        return "/" + location[5:].lstrip("/")
    return None


def plain_paths_are_local(spark_conf: Mapping[str, str], master: str | None,
                          remote: str | None) -> bool:
    """Whether a path without a scheme names a file of this machine: the session will be
    local (a local master, or a local Spark Connect server) and no Hadoop default
    filesystem is configured (``HADOOP_CONF_DIR``, ``spark.hadoop.fs.defaultFS``). Under
    spark-submit without an explicit master the JVM already knows, and decides."""
    if remote:
        return remote.startswith("local")
    if master is None and "PYSPARK_GATEWAY_PORT" in os.environ:  # launched by spark-submit
        return False
    default_fs = spark_conf.get("spark.hadoop.fs.defaultFS", "file:")
    return ((master or "local").startswith("local") and default_fs.startswith("file:")
            and not os.environ.get("HADOOP_CONF_DIR"))


def check_input(location: str, key: str, plain_is_local: bool) -> None:
    """Raise when the local input ``location`` is not there or not readable."""
    path = local_path(location, plain_is_local)
    if path is None or "{" in path:  # remote, or a Hadoop glob Python's glob does not read
        return
    if any(c in path for c in "*?["):
        if not glob.glob(path):
            raise InvalidInputError(f"the input {location!r} {INPUT_ABSENT.format(key=key)}")
        return
    if not os.path.exists(path):
        raise InvalidInputError(f"the input {location!r} {INPUT_ABSENT.format(key=key)}")
    if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
        raise InvalidInputError(f"the input {location!r} {UNREADABLE.format(key=key)}")


def check_artifact(location: str, key: str, plain_is_local: bool) -> None:
    """Raise when the model artifact at ``location`` is not there, not an artifact or not
    readable: locally, or through pyarrow for a remote URI it can reach."""
    path = local_path(location, plain_is_local)
    if path is not None:
        found = [os.path.exists(path)] + [os.path.exists(os.path.join(path, name))
                                          for name in ARTIFACT_FILES]
    else:
        found = _remote_found(location)
        if found is None:
            return
    if not found[0]:
        raise artifact_problem(location, key, "does not exist")
    for name, there in zip(ARTIFACT_FILES, found[1:]):
        if not there:
            raise artifact_problem(location, key, f"is not one: it has no {name}")
    if path is not None and not os.access(os.path.join(path, ARTIFACT_FILES[0]), os.R_OK):
        raise artifact_problem(location, key, "is not readable (permission denied)")


def check_output(location: str, key: str, plain_is_local: bool) -> None:
    """Raise when the nearest existing directory above the local output ``location`` (where
    the staging copy is written beside it) is a file or not writable."""
    path = local_path(location, plain_is_local)
    if path is None:
        return
    existing = os.path.dirname(os.path.abspath(path.rstrip("/") or "/"))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise unwritable(location, key, f"{existing!r} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise unwritable(location, key, f"the directory {existing!r} is not writable "
                                        "(permission denied)")


def _remote_found(location: str) -> list[bool] | None:
    """Whether the artifact directory and each of :data:`ARTIFACT_FILES` exist, through
    pyarrow; None when pyarrow cannot tell (unknown scheme, no client library, no answer in
    time, no credentials)."""
    match = _SCHEME.match(location)
    if match is None or match.group(1).lower() in _JVM_SCHEMES:  # the default FS: Spark's
        return None
    answer: list[list[bool]] = []

    def probe() -> None:
        try:
            from pyarrow import fs

            filesystem, root = fs.FileSystem.from_uri(location)
            names = [root] + [f"{root.rstrip('/')}/{name}" for name in ARTIFACT_FILES]
            answer.append([info.type != fs.FileType.NotFound
                           for info in filesystem.get_file_info(names)])
        except Exception as error:  # pyarrow cannot tell: Spark will
            logger.debug("pyarrow cannot check %s before Spark starts: %s", location, error)

    # A daemon thread: a store that does not answer must not keep the command waiting.
    thread = threading.Thread(target=probe, name="spark-gmm-artifact-check", daemon=True)
    thread.start()
    thread.join(_REMOTE_SECONDS)
    return answer[0] if answer else None


def check_job_locations(config: JobConfig, command: str, master: str | None = None,
                        remote: str | None = None) -> None:
    """Check every location the ``fit``, ``score`` or ``drift`` command will read or write,
    before its Spark session starts; raise the first problem.

    Raises
    ------
    InvalidInputError
        An input or model artifact that is not there or not readable, or an output that
        cannot be written (the message names the location, its config key and the fix).
    """
    local = plain_paths_are_local(config.spark.conf, master, remote)
    if config.input.format != "table" and config.input.path:
        check_input(config.input.path, "input.path", local)
    if command != "fit" and config.model.path:
        check_artifact(config.model.path, "model.path", local)
    if command == "fit" and config.model.warm_start:
        check_artifact(config.model.warm_start, "model.warm_start", local)
    if command == "drift":
        return
    outputs = [("output.path", config.output.path)]
    outputs += [("model.path", config.model.path)] if command == "fit" else []
    if config.preprocess.invalid_rows == "quarantine":
        outputs.append(("preprocess.quarantine_path", config.preprocess.quarantine_path))
    for key, location in outputs:
        if location:
            check_output(location, key, local)
    # Files of the driver process itself: always local.
    if command == "fit" and config.checkpoint.path:
        check_output(config.checkpoint.path, "checkpoint.path", True)
    if command == "fit" and config.report.enabled and config.report.path:
        check_output(config.report.path, "report.path", True)
