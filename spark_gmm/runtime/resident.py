"""Long-running tasks that answer the driver's requests over their stored partitions.

A Spark job per EM iteration schedules tasks, starts them in the Python workers and collects
the results: on 2 cores in local mode 0.05-0.1 s of wall time and as much JVM CPU per pass, a
quarter of an iteration at 1M rows and most of it at 250k rows. Spark's
barrier mode cannot replace it: its ``allGather`` polls with a one-second sleep.

Instead, one job starts one task per free slot: the stored partitions coalesced by the
executors that hold them, or, where that would leave the tasks' rows uneven, slices of
near-equal rows (:mod:`.balance`). Each task memory-maps its rows once, connects back to a
socket on the driver, proves it holds the fit's secret, and then answers requests (see
:mod:`.wire`) until the driver says stop. The EM loop, its M-step, logging and checkpoints
stay on the driver.

Nothing here changes what is computed, only where: the statistics are merged in task order
rather than ``treeReduce``'s, so the two ways agree to rounding. The driver gives the resident
job up, and its caller runs the pass as a Spark job from the same state, whenever: not every
task connects within :data:`CONNECT_SECONDS` (too few free slots, the driver's address
unreachable from the executors), a task cannot read a stored partition where it runs (or
finds it read again from a changed input), a task's connection drops and no new attempt of
it connects within :data:`RECONNECT_SECONDS` or can get a slot (its executor left), or the
job ends. The error says whether the cluster changed under the job (an executor left, rows
not where the tasks run): then the caller may start a new resident job on the executors
there are now. A task that fails is retried by Spark like any other; its new attempt connects
again and is sent the pending request.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from pyspark import InheritableThread, SparkContext, TaskContext
from pyspark.sql import SparkSession

from .balance import Slice, rows_in_words
from .block_store import BlockStore, StoredPartition, read_task
from .digest import PartitionDigest
from .input_checks import Block
from .requests import PassRequest
from .scheduler_state import executor_hosts, slot_count
from .wire import (
    ChannelError,
    Value,
    answer_challenge,
    challenge,
    encode,
    new_secret,
    receive_message,
    send_message,
)
from .worker import prepare_python_worker

logger = logging.getLogger(__name__)

# Spark setting that turns resident tasks off (one Spark job per pass, as before).
ENABLED_CONF = "spark.gmm.residentTasks.enabled"
# Seconds a resident pass may take before the driver gives the resident job up and runs the
# pass as a Spark job (a task hung in a pass must not hang the fit). Generous: a pass over
# an executor's share of the rows takes seconds even at tens of millions of rows.
PASS_TIMEOUT_CONF = "spark.gmm.residentTasks.passTimeout"
DEFAULT_PASS_TIMEOUT_SECONDS = 1800.0
CONNECT_SECONDS = 30.0
RECONNECT_SECONDS = 20.0
_HANDSHAKE_SECONDS = 10.0
_POLL_SECONDS = 0.25
_STOP_SECONDS = 10.0

# What a task computes for one request: (the request, the task's blocks) -> values or None.
Handler = Callable[[PassRequest, list[Block]], "list[Value] | None"]


@contextmanager
def resident_tasks_setting(spark: SparkSession, enabled: bool) -> Iterator[None]:
    """Fits inside use resident tasks or not; the session's own setting returns after."""
    previous = spark.conf.get(ENABLED_CONF, None)
    spark.conf.set(ENABLED_CONF, str(enabled).lower())
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(ENABLED_CONF)
        else:
            spark.conf.set(ENABLED_CONF, previous)


def _results(answered: Iterator[int]) -> Iterator[int]:
    return answered


class ResidentUnavailableError(RuntimeError):
    """The resident job cannot serve (more) requests; use one Spark job per pass.

    ``cluster_changed``: the cause is an executor that left, or rows no longer where the
    job's tasks run, so a new resident job over the executors there now can serve again.
    """

    def __init__(self, message: str, cluster_changed: bool = False) -> None:
        super().__init__(message)
        self.cluster_changed = cluster_changed


def _driver_address(sc: SparkContext) -> tuple[str, str]:
    """(address the tasks connect to, address the driver binds)."""
    if sc.master.startswith("local"):
        return "127.0.0.1", "127.0.0.1"
    conf = sc.getConf()
    host = conf.get("spark.driver.host") or socket.gethostname()
    return host, conf.get("spark.driver.bindAddress") or host


def _tune(sock: socket.socket) -> None:
    # Small messages go out at once (no Nagle delay); a peer whose machine vanished sends no
    # FIN: keep-alive probes notice it in ~30 s.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _serve(address: tuple[str, int], secret: bytes, handler: Handler,
           recorded: dict[int, PartitionDigest],
           layout: dict[int, tuple[int, tuple[Slice, ...]]] | None,
           locations: dict[int, StoredPartition], index: int, handles: Iterator[Any]
           ) -> Iterator[int]:
    """The task: map the partitions (with ``layout``: this task's slices of them), connect,
    answer requests until told to stop."""
    prepare_python_worker()
    index, blocks, missing = read_task(handles, recorded, layout, locations, index)
    try:
        sock = socket.create_connection(address, timeout=CONNECT_SECONDS)
    except OSError:
        yield -1  # the driver is unreachable, or has already given this job up
        return
    context = TaskContext.get()
    answered = 0
    with sock:
        try:
            _tune(sock)
            answer_challenge(sock, secret)
            sock.settimeout(None)  # the driver may take its time between requests
            send_message(sock, "hello", {"task": index, "missing": missing,
                                         "rows": sum(len(x) for x, _ in blocks),
                                         "attempt": context.attemptNumber() if context else 0})
        except (OSError, ChannelError):
            yield -1  # the driver gave this job up before it accepted this task
            return
        while not missing:
            # A connection closed without "stop" raises: Spark then retries the task, or,
            # when the driver replaced it with a newer attempt, lets that one serve.
            request = receive_message(sock)
            if request.kind == "stop":
                break
            [pass_request] = request.values
            result = handler(pass_request, blocks)
            send_message(sock, "result", {"round": request.meta["round"]}, result or [])
            answered += 1
    yield answered


class ResidentTasks:
    """Driver side of one resident job over ``store``'s partitions.

    Parameters
    ----------
    store : BlockStore
        Written already (its handles are cached where the files are).
    handler : callable
        What each task computes per request; must be picklable (a module-level function or
        a partial of one).
    n_tasks : int
        Tasks of the job, at most the free slots.

    Raises
    ------
    ResidentUnavailableError
        The driver cannot listen on its address.
    """

    def __init__(self, store: BlockStore, handler: Handler, n_tasks: int,
                 pass_timeout: float = DEFAULT_PASS_TIMEOUT_SECONDS) -> None:
        self.n_tasks = n_tasks
        self.pass_timeout = pass_timeout
        self._sc: SparkContext = store.handles.context
        self._secret = new_secret()
        self.tag = f"spark-gmm-resident-{uuid.uuid4().hex}"
        self._selector = selectors.DefaultSelector()
        self._connections: dict[int, socket.socket] = {}
        self._lost_at: dict[int, float] = {}
        self._round = 0
        self._rows: dict[int, int] = {}  # rows per task, as its hello said
        self._request: bytes | None = None
        self._results: dict[int, list[Value]] = {}
        self._job_error: BaseException | None = None
        host, bind = _driver_address(self._sc)
        try:
            self._listener = socket.create_server((bind, 0), backlog=max(8, 2 * n_tasks))
        except OSError as error:
            self._selector.close()
            raise ResidentUnavailableError(
                f"cannot listen for the resident tasks on {bind}: {error}") from error
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._address = (host, self._listener.getsockname()[1])
        self.asked = n_tasks  # the layout or coalescing may make fewer
        layout = store.layout(n_tasks, executor_hosts(self._sc) or 1)
        serve = partial(_serve, self._address, self._secret, handler, store.recorded)
        self._partitions: list[int] | None = None  # of the job's RDD, to run (None: all)
        if layout is None:
            handles = store.handles
            if handles.getNumPartitions() > n_tasks:
                # Groups partitions by the executors caching their handles (their files'
                # hosts).
                handles = handles.coalesce(n_tasks)
            self._job = handles.mapPartitionsWithIndex(partial(serve, None, {}))
            self.n_tasks = self._job.getNumPartitions()  # coalescing may leave fewer groups
        else:
            self._job = layout.rdd(store.handles).mapPartitionsWithIndex(
                partial(serve, layout.by_index(), store.locations))
            self._partitions = sorted(layout.indices)
            self.n_tasks = len(layout.tasks)
        self._thread = InheritableThread(target=self._run_job, daemon=True)

    def _run_job(self) -> None:
        self._sc.addJobTag(self.tag)
        self._sc.setJobDescription(f"spark-gmm: {self.n_tasks} resident EM tasks")
        try:
            self._sc.runJob(self._job, _results, self._partitions)
        except BaseException as error:  # read by the driver thread through _check_job
            self._job_error = error

    def start(self) -> None:
        """Launch the job and wait until every task has connected.

        Raises
        ------
        ResidentUnavailableError
            Not every task connected in time, or one cannot read its partitions.
        """
        self._thread.start()
        deadline = time.monotonic() + CONNECT_SECONDS
        while len(self._connections) < self.n_tasks:
            if time.monotonic() > deadline:
                raise ResidentUnavailableError(
                    f"{len(self._connections)} of {self.n_tasks} tasks connected to the "
                    f"driver within {CONNECT_SECONDS:.0f} s (too few free task slots, or "
                    "the executors cannot reach the driver's address)")
            self._poll()
        logger.info("%d resident tasks serve the EM passes (rows per task: %s)", self.n_tasks,
                    rows_in_words(self.task_rows))

    @property
    def task_rows(self) -> list[int]:
        """Rows each task holds, in task order (as the tasks that connected said)."""
        return [self._rows.get(task, 0) for task in range(self.n_tasks)]

    def request(self, request: PassRequest) -> list[list[Value]]:
        """Every task's answer to one pass request, in task order (empty for tasks without
        rows).

        Raises
        ------
        ResidentUnavailableError
            See the module docstring; the caller repeats the request another way.
        """
        self._round += 1
        self._request = encode("request", {"round": self._round}, [request])
        self._results = {}
        for task in list(self._connections):
            self._send_request(task)
        deadline = time.monotonic() + self.pass_timeout
        while len(self._results) < self.n_tasks:
            if time.monotonic() > deadline:
                late = sorted(set(range(self.n_tasks)) - set(self._results))
                raise ResidentUnavailableError(
                    f"resident tasks {late} did not answer within {self.pass_timeout:.0f} s "
                    f"({PASS_TIMEOUT_CONF})")
            self._poll()
        self._request = None
        return [self._results[task] for task in range(self.n_tasks)]

    def _poll(self) -> None:
        for key, _ in self._selector.select(timeout=_POLL_SECONDS):
            if key.data is None:
                self._accept()
            else:
                self._receive(key.data)
        self._check_job()

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            conn.setblocking(True)
            conn.settimeout(_HANDSHAKE_SECONDS)
            _tune(conn)
            challenge(conn, self._secret)
            hello = receive_message(conn)
            task = int(hello.meta["task"])
            if hello.kind != "hello" or not 0 <= task < self.n_tasks:
                raise ChannelError(f"unexpected first message {hello.kind!r}")
        except (ChannelError, OSError, KeyError, TypeError, ValueError) as error:
            logger.warning("refused a connection to the resident tasks' socket: %s", error)
            conn.close()
            return
        missing = hello.meta.get("missing") or []
        if missing:
            conn.close()
            raise ResidentUnavailableError(
                f"stored partitions {missing} are not readable where their resident task runs "
                "(or were read again from an input that changed)", cluster_changed=True)
        conn.settimeout(None)
        self._rows[task] = int(hello.meta.get("rows", 0))
        self._drop(task)  # a newer attempt replaces an older one
        self._connections[task] = conn
        self._lost_at.pop(task, None)
        self._selector.register(conn, selectors.EVENT_READ, task)
        if hello.meta.get("attempt", 0):
            logger.info("resident task %d reconnected (attempt %d)", task,
                        hello.meta["attempt"])
        if self._request is not None and task not in self._results:
            self._send_request(task)

    def _send_request(self, task: int) -> None:
        assert self._request is not None
        try:
            self._connections[task].sendall(self._request)
        except OSError:
            self._drop(task, lost=True)

    def _receive(self, task: int) -> None:
        try:
            message = receive_message(self._connections[task])
        except (ChannelError, OSError):
            self._drop(task, lost=True)
            return
        if message.kind == "result" and message.meta.get("round") == self._round:
            self._results[task] = message.values

    def _drop(self, task: int, lost: bool = False) -> None:
        conn = self._connections.pop(task, None)
        if conn is None:
            return
        self._selector.unregister(conn)
        conn.close()
        if lost:
            logger.warning("lost the connection to resident task %d; waiting up to %.0f s for "
                           "Spark to start it again", task, RECONNECT_SECONDS)
            self._lost_at[task] = time.monotonic()

    def _check_job(self) -> None:
        if not self._thread.is_alive():
            host, port = self._address
            reason = (f"it failed: {self._job_error!r}" if self._job_error is not None
                      else f"its tasks could not connect to the driver at {host}:{port}")
            raise ResidentUnavailableError(f"the resident job ended ({reason})")
        now = time.monotonic()
        lost = [task for task in self._lost_at if task not in self._results]
        if lost and slot_count(self._sc) < self.n_tasks:
            # An executor left: the lost tasks' new attempts would wait for slots that the
            # other resident tasks hold.
            raise ResidentUnavailableError(
                f"resident tasks {lost} were lost with their executor, and the application "
                f"now has fewer task slots than the job's {self.n_tasks} tasks",
                cluster_changed=True)
        for task in lost:
            if now - self._lost_at[task] > RECONNECT_SECONDS:
                raise ResidentUnavailableError(
                    f"resident task {task} did not reconnect within {RECONNECT_SECONDS:.0f} s",
                    cluster_changed=True)

    def close(self) -> None:
        """Tell every task to stop, and end the job (cancelling what never started)."""
        for task in list(self._connections):
            try:
                send_message(self._connections[task], "stop")
            except OSError:
                pass
            self._drop(task)
        self._selector.close()
        self._listener.close()
        if self._thread.ident is None:
            return
        self._thread.join(_STOP_SECONDS)
        if self._thread.is_alive():  # tasks still waiting for a slot, or stuck
            self._sc.cancelJobsWithTag(self.tag)
            self._thread.join(_STOP_SECONDS)
        if self._thread.is_alive():
            logger.warning("the resident job has not ended %.0f s after it was cancelled",
                           2 * _STOP_SECONDS)
