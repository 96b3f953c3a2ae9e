"""Reading inputs and writing outputs atomically through Hadoop's FileSystem API."""

from __future__ import annotations

import json
import logging
import posixpath
import re
import uuid
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from ..errors import (
    InvalidInputError,
    cause_in_words,
    failure_chain,
    is_permission_denied,
    spark_condition,
)
from ..runtime.connect import is_connect_session, remove_directory
from .config import InputConfig
from .locations import INPUT_ABSENT, UNREADABLE, unwritable

logger = logging.getLogger(__name__)


# Spark's error conditions that mean the configured input is not there or not readable as
# the format says: a user error (exit code 2), with the fix in words.
_INPUT_ERRORS = {
    "PATH_NOT_FOUND": INPUT_ABSENT,
    "TABLE_OR_VIEW_NOT_FOUND": "is not a table or view of this session's catalog; check "
                               "input.table",
    "UNABLE_TO_INFER_SCHEMA": "holds no {format} files Spark can read a schema from (empty, "
                              "or another format); check input.path and input.format",
    # A file of the input that Spark cannot read (at the schema, or at the first pass).
    "FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER": "has a file that is not a {format} file "
                                                "({file}); remove it, or check input.format",
    "FAILED_READ_FILE.PARQUET_COLUMN_DATA_TYPE_MISMATCH":
        "has files that disagree on a column's type: {file} stores {cause}; rewrite that file "
        "or leave it out of input.path",
    "FAILED_READ_FILE.NO_HINT": "has a file Spark cannot read ({file}: {cause}); replace or "
                                "remove it",
}


def input_error(error: BaseException, config: InputConfig) -> InvalidInputError | None:
    """The user error that Spark's ``error``, raised reading the configured input, means; or
    None when it is not one (the job then fails with exit code 1)."""
    source = config.table if config.format == "table" else config.path
    if is_permission_denied(error):
        return InvalidInputError(f"the input {source!r} {UNREADABLE.format(key='input.path')}")
    condition = spark_condition(error)
    fix = _INPUT_ERRORS.get(condition)
    if fix is None:
        return None
    chain = " ".join(failure_chain(error))
    file = re.search(r"reading file (\S+?)\.?\s", chain)
    mismatch = re.search(r"column \[([^\]]*)\]\. Expected Spark type (\S+), actual Parquet "
                         r"type (\S+?)\.?\s", chain)
    cause = (f"column {mismatch.group(1)} as {mismatch.group(3)}, not {mismatch.group(2)}"
             if mismatch else cause_in_words(error))
    return InvalidInputError(f"the input {source!r} " + fix.format(
        key="input.path", format=config.format, file=file.group(1) if file else "a file",
        cause=cause))


def read_input(spark: SparkSession, config: InputConfig) -> DataFrame:
    """The configured input: Parquet (file, directory or glob), CSV with header, or a table.

    Raises
    ------
    InvalidInputError
        The path or table is not there, not readable, or holds nothing readable in the
        configured format (:func:`input_error`).
    """
    try:
        if config.format == "table":
            return spark.read.table(config.table)
        if config.format == "csv":
            return spark.read.csv(config.path, header=True, inferSchema=True)
        return spark.read.parquet(config.path)
    except Exception as error:
        mapped = input_error(error, config)
        if mapped is None:
            raise
        raise mapped from error


class HadoopPaths:
    """Small helpers over ``org.apache.hadoop.fs.FileSystem`` (local, HDFS, cloud stores)."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def _fs(self, path: str) -> Any:
        return self._path(path).getFileSystem(self._conf)

    def exists(self, path: str) -> bool:
        return bool(self._fs(path).exists(self._path(path)))

    def delete(self, path: str) -> None:
        if self.exists(path):
            self._fs(path).delete(self._path(path), True)

    def rename(self, source: str, target: str) -> None:
        if not self._fs(source).rename(self._path(source), self._path(target)):
            raise OSError(f"could not rename {source} to {target}")

    def mkdirs(self, path: str) -> None:
        self._fs(path).mkdirs(self._path(path))

    def write_text(self, path: str, text: str) -> None:
        stream = self._fs(path).create(self._path(path), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def read_text(self, path: str) -> str:
        fs = self._fs(path)
        if fs.getFileStatus(self._path(path)).isDirectory():
            # written through Spark Connect (ConnectPaths.write_text): one part file inside
            parts = [status.getPath().toString() for status in fs.listStatus(self._path(path))
                     if status.getPath().getName().startswith("part-")]
            if len(parts) != 1:
                raise OSError(f"{path} is a directory without exactly one part file")
            path = parts[0]
        stream = fs.open(self._path(path))
        try:
            length = fs.getFileStatus(self._path(path)).getLen()
            data = self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream, length)
            return bytes(data).decode("utf-8")
        finally:
            stream.close()


class ConnectPaths:
    """:class:`HadoopPaths` for a Spark Connect client, which has no JVM of its own: every
    operation is a request to the server. There is no rename (see :func:`atomic_publish`),
    and a text file is written as a directory holding one part file (read back by both)."""

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark

    def exists(self, path: str) -> bool:
        from pyspark.errors import AnalysisException

        try:
            self._spark.read.format("binaryFile").load(path).limit(0).collect()
        except AnalysisException as error:
            if "PATH_NOT_FOUND" in str(error):
                return False
            raise
        return True

    def delete(self, path: str) -> None:
        remove_directory(self._spark, path)

    def write_text(self, path: str, text: str) -> None:
        (self._spark.createDataFrame([(text,)], "value string").coalesce(1)
         .write.mode("overwrite").text(path))

    def read_text(self, path: str) -> str:
        return str(self._spark.read.text(path, wholetext=True).first()[0])


def paths_of(spark: SparkSession) -> HadoopPaths | ConnectPaths:
    """The file operations this session can do: Hadoop's FileSystem, or through Connect."""
    return ConnectPaths(spark) if is_connect_session(spark) else HadoopPaths(spark)


def atomic_publish(spark: SparkSession, final_path: str, write: Callable[[str], None],
                   key: str = "") -> None:
    """Write to a staging path beside ``final_path``, then swap it in.

    ``write(staging)`` produces the complete output. Only when it returns is the previous
    output moved aside and the new one renamed into place, so a failure at any point before
    leaves the previous output intact and nothing partial at ``final_path``. (The swap is two
    renames: atomic per rename on HDFS and local disks; object stores copy instead.)

    On Spark Connect, which offers no rename, the previous output is deleted and ``write``
    writes ``final_path`` itself: a failure part-way leaves a partial output there (the next
    successful run replaces it), and the log says so.

    Raises
    ------
    InvalidInputError
        With ``key`` (the config key naming ``final_path``): Spark may not write there.
    """
    try:
        _publish(spark, final_path, write)
    except Exception as error:
        if key and is_permission_denied(error):
            raise unwritable(final_path, key) from error
        raise


def _publish(spark: SparkSession, final_path: str, write: Callable[[str], None]) -> None:
    if is_connect_session(spark):
        logger.info("Spark Connect has no rename: %s is replaced in place, not atomically",
                    final_path)
        ConnectPaths(spark).delete(final_path)
        write(final_path)
        logger.info("published %s", final_path)
        return
    paths = HadoopPaths(spark)
    token = uuid.uuid4().hex[:12]
    # Beside the output and hidden from readers of the directory holding it: a staging
    # directory a killed job leaves behind is never read as data. (Spark's file listing
    # skips names starting with "."; with "_" it skips them only when they hold no "=",
    # and partition directories do.)
    parent, name = posixpath.split(final_path.rstrip("/"))
    staging = posixpath.join(parent, f".{name}._staging-{token}")
    retired = posixpath.join(parent, f".{name}._previous-{token}")
    try:
        write(staging)
    except BaseException:
        paths.delete(staging)
        raise
    had_previous = paths.exists(final_path)
    if had_previous:
        paths.rename(final_path, retired)
    try:
        paths.rename(staging, final_path)
    except BaseException:
        if had_previous:
            paths.rename(retired, final_path)
        raise
    if had_previous:
        paths.delete(retired)
    logger.info("published %s", final_path)


def write_json(spark: SparkSession, path: str, payload: dict[str, Any]) -> None:
    paths_of(spark).write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(spark: SparkSession, path: str) -> dict[str, Any]:
    return json.loads(paths_of(spark).read_text(path))
