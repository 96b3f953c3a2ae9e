"""Files replaced whole: written under a temporary name, then renamed into place.

A reader of the path sees the previous file or the complete new one, never a half-written
one, whatever happens to the writer (a killed process leaves only a temporary file beside
it). With ``durable`` the data are also on disk before the rename and the rename itself is
on disk before :meth:`AtomicFile.commit` returns (fsync of the file, then of its directory),
so the new file survives a machine crash too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any


class AtomicFile:
    """One file being replaced; use as a context manager (commits unless an error escapes),
    or call :meth:`commit` / :meth:`abort` yourself.

    Parameters
    ----------
    path : str
        The file to replace; its directory must exist.
    durable : bool
        fsync the data and the directory (checkpoints); off for scratch files that die with
        their process's machine anyway (executor-local feature blocks).
    text : bool
        Open the stream in text mode (UTF-8) instead of binary.
    """

    def __init__(self, path: str, durable: bool, text: bool = False) -> None:
        self.path = path
        self.durable = durable
        directory = os.path.dirname(os.path.abspath(path))
        handle, self.temporary = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
        self.stream: IO[Any] = (os.fdopen(handle, "w", encoding="utf-8") if text
                                else os.fdopen(handle, "wb"))
        self._done = False

    def commit(self, before_replace: Callable[[], None] | None = None) -> None:
        """Close the temporary file and rename it to ``path``.

        ``before_replace`` runs between the two (tests use it to kill a writer there).
        """
        try:
            if self.durable:
                self.stream.flush()
                os.fsync(self.stream.fileno())
            self.stream.close()
            if before_replace is not None:
                before_replace()
            os.replace(self.temporary, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        if self.durable:
            _fsync_directory(os.path.dirname(os.path.abspath(self.path)))

    def abort(self) -> None:
        """Drop the temporary file; ``path`` stays as it was."""
        self._done = True
        self.stream.close()
        if os.path.exists(self.temporary):
            os.unlink(self.temporary)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._done:
            return
        if kind is None:
            self.commit()
        else:
            self.abort()


def _fsync_directory(directory: str) -> None:
    # The rename is an entry of the directory: it is only durable once the directory is.
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
