"""SparkSession construction for jobs: quiet, fast defaults that never override the user's."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from pyspark import SparkConf, SparkContext
from pyspark.java_gateway import launch_gateway
from pyspark.sql import SparkSession

from ..runtime.progress import phase

logger = logging.getLogger(__name__)

# Applied only where neither spark-submit nor the job's config already set the key.
DEFAULT_SPARK_CONF: dict[str, str] = {
    # Unix sockets between the JVM and Python workers avoid ~40 ms TCP stalls per task.
    "spark.python.unix.domain.socket.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


# The log4j configuration the command line's own JVMs start with (conf/log4j2.properties,
# for spark-submit, holds the same): Spark's warnings stay, its start-up chatter goes.
QUIET_LOG4J = Path(__file__).resolve().parent.parent / "data" / "log4j2.properties"
_JAVA_OPTIONS = "spark.driver.extraJavaOptions"

_quiet_start = True


def show_spark_start_up(shown: bool) -> None:
    """Whether JVMs started from now on log as Spark does by default (``--verbose``) or
    with :data:`QUIET_LOG4J` (the command line's default)."""
    global _quiet_start
    _quiet_start = not shown


def _launch_conf(conf: Mapping[str, str]) -> SparkConf:
    """Settings for a JVM this process starts: the quiet log4j configuration first, then
    the job's own driver Java options (which may name another configuration)."""
    launch = SparkConf(loadDefaults=False)
    options = [f"-Dlog4j2.configurationFile={QUIET_LOG4J.as_uri()}"] if _quiet_start else []
    options += [conf[_JAVA_OPTIONS]] if conf.get(_JAVA_OPTIONS) else []
    if options:
        launch.set(_JAVA_OPTIONS, " ".join(options))
    return launch


# What the JVM itself prints on every start (Spark 4 adds the vector module), before any
# logging configuration applies.
_JVM_START_NOTICES = (b"WARNING: Using incubator modules: jdk.incubator.vector",
                      b"Picked up JAVA_TOOL_OPTIONS:", b"Picked up _JAVA_OPTIONS:")


def _relay(stream: IO[bytes]) -> None:
    """Copy the JVM's standard error to ours, without its start-up notices. It must keep
    reading whatever happens: a JVM whose standard error fills up blocks."""
    for line in stream:
        if line.rstrip().startswith(_JVM_START_NOTICES):
            continue
        try:
            sys.stderr.buffer.write(line)
            sys.stderr.flush()
        except Exception:  # a closed or odd stderr must not stop the draining
            pass


def _start_quiet_gateway(launch: SparkConf) -> Any:
    gateway = launch_gateway(launch, popen_kwargs={"stderr": subprocess.PIPE})
    threading.Thread(target=_relay, args=(gateway.proc.stderr,), name="jvm-stderr",
                     daemon=True).start()
    return gateway


def _submitted_conf(conf: Mapping[str, str]) -> dict[str, str]:
    # Starting (or, under spark-submit, joining) the JVM gateway first makes SparkConf see
    # the spark-submit --conf values, which the JVM holds as system properties. A JVM
    # started here gets its Java options now: the driver's are fixed once it runs.
    launch = _launch_conf(conf)
    starts_jvm = SparkContext._gateway is None and "PYSPARK_GATEWAY_PORT" not in os.environ
    gateway = _start_quiet_gateway(launch) if starts_jvm and _quiet_start else None
    SparkContext._ensure_initialized(gateway=gateway, conf=launch)
    return dict(SparkConf().getAll())


def build_session(app_name: str, master: str | None = None,
                  conf: Mapping[str, str] | None = None, remote: str | None = None
                  ) -> SparkSession:
    """Get or create the job's SparkSession.

    Parameters
    ----------
    app_name : str
    master : str or None
        Explicit master; otherwise spark-submit's, or ``local[*]`` when run with python.
    conf : mapping or None
        Spark settings from the job's config file; they win over the defaults here.
    remote : str or None
        A Spark Connect address (``sc://HOST:PORT``, or ``local[N]`` for a local server
        started from the wheel): the session is a Connect client and ``master`` is ignored.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if remote:
        return _connect_session(app_name, remote, conf or {})
    submitted = _submitted_conf(conf or {})
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    elif "spark.master" not in submitted:
        builder = builder.master("local[*]")
    for key, value in DEFAULT_SPARK_CONF.items():
        if key not in submitted:
            builder = builder.config(key, value)
    # pyspark's own launcher turns the progress bar on; jobs keep it off unless the config
    # asks for it, because it garbles scheduler logs.
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    shown = master or submitted.get("spark.master") or "local[*]"
    with phase(f"starting the Spark session ({shown})", logger):
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel(os.environ.get("SPARK_GMM_SPARK_LOG_LEVEL", "WARN"))
    return session


# Connect sessions this process started (not ones it found): the command line stops them
# when it is done, as a Connect client's threads would otherwise keep the process alive.
_STARTED: list[SparkSession] = []


def _connect_session(app_name: str, remote: str, conf: Mapping[str, str]) -> SparkSession:
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    # A Connect client has no JVM: no spark-submit conf to read and no log level to set.
    # Only runtime (SQL) settings reach an existing server; a local server (remote
    # "local[N]") starts with all of them, the Python workers' Unix sockets included.
    settings = ({**DEFAULT_SPARK_CONF} if remote.startswith("local") else
                {"spark.sql.execution.arrow.pyspark.enabled": "true"})
    builder = SparkSession.builder.remote(remote).appName(app_name)
    for key, value in {**settings, **conf}.items():
        builder = builder.config(key, value)
    found = ConnectSession.getActiveSession()
    with phase(f"connecting to Spark Connect at {remote}", logger):
        session = builder.getOrCreate()
    if found is None:
        _STARTED.append(session)
    return session


def stop_started_sessions() -> None:
    """Stop the Connect sessions :func:`build_session` started (sessions it found running,
    a caller's, stay)."""
    while _STARTED:
        try:
            _STARTED.pop().stop()
        except Exception:  # stopping must not hide the command's own outcome
            logger.warning("could not stop the Spark Connect session", exc_info=True)
