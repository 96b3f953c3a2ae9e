"""Reading inputs and writing outputs atomically through Hadoop's FileSystem API."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from .config import InputConfig

logger = logging.getLogger(__name__)


def read_input(spark: SparkSession, config: InputConfig) -> DataFrame:
    """The configured input: Parquet (file, directory or glob), CSV with header, or a table."""
    if config.format == "table":
        return spark.read.table(config.table)
    if config.format == "csv":
        return spark.read.csv(config.path, header=True, inferSchema=True)
    return spark.read.parquet(config.path)


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
        stream = fs.open(self._path(path))
        try:
            length = fs.getFileStatus(self._path(path)).getLen()
            data = self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream, length)
            return bytes(data).decode("utf-8")
        finally:
            stream.close()


def atomic_publish(spark: SparkSession, final_path: str, write: Callable[[str], None]) -> None:
    """Write to a staging path beside ``final_path``, then swap it in.

    ``write(staging)`` produces the complete output. Only when it returns is the previous
    output moved aside and the new one renamed into place, so a failure at any point before
    leaves the previous output intact and nothing partial at ``final_path``. (The swap is two
    renames: atomic per rename on HDFS and local disks; object stores copy instead.)
    """
    paths = HadoopPaths(spark)
    token = uuid.uuid4().hex[:12]
    staging = f"{final_path.rstrip('/')}._staging-{token}"
    retired = f"{final_path.rstrip('/')}._previous-{token}"
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
    HadoopPaths(spark).write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(spark: SparkSession, path: str) -> dict[str, Any]:
    return json.loads(HadoopPaths(spark).read_text(path))
