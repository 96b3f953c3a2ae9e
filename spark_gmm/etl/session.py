"""SparkSession construction for jobs: quiet, fast defaults that never override the user's."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from ..runtime.progress import phase

logger = logging.getLogger(__name__)

# Applied only where neither spark-submit nor the job's config already set the key.
DEFAULT_SPARK_CONF: dict[str, str] = {
    # Unix sockets between the JVM and Python workers avoid ~40 ms TCP stalls per task.
    "spark.python.unix.domain.socket.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def _submitted_conf() -> dict[str, str]:
    # Starting (or, under spark-submit, joining) the JVM gateway first makes SparkConf see
    # the spark-submit --conf values, which the JVM holds as system properties.
    SparkContext._ensure_initialized()
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
    submitted = _submitted_conf()
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
