"""Spool files for local-file intake, readable while they are still being written.

A single ``csvUpload`` PUT appends to one spool file; the job's intake reads it through a
:class:`SpoolReader` that waits at the end of the data until the upload finishes, so scoring can
start while the upload still streams. Multipart uploads keep one file per part and are read in
order by :class:`PartsReader`, which drops the header row repeated at the top of every part but
the first.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import BinaryIO

from airflow_batchpred.server.adapters.base import IntakeError, JobCancelled

_WAIT_SECONDS = 0.1


class Spool:
    """A file being filled by an upload.

    :param path: where the bytes go (created/truncated on :meth:`open`).
    :param expected_size: the upload's ``Content-Length``, when it has one (for progress).
    """

    def __init__(self, path: Path, expected_size: int | None = None) -> None:
        self.path = path
        self.expected_size = expected_size
        self.size = 0
        self.finished = False
        self.error: str | None = None
        self._changed = threading.Condition()
        self._sink: BinaryIO | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = open(self.path, "wb")  # noqa: SIM115 - closed in finish()/fail()

    def append(self, data: bytes) -> None:
        assert self._sink is not None
        self._sink.write(data)
        self._sink.flush()
        with self._changed:
            self.size += len(data)
            self._changed.notify_all()

    def finish(self) -> None:
        self._close()
        with self._changed:
            self.finished = True
            self._changed.notify_all()

    def fail(self, reason: str) -> None:
        self._close()
        with self._changed:
            self.error = reason
            self.finished = True
            self._changed.notify_all()

    def _close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def reader(self, cancelled: threading.Event) -> SpoolReader:
        return SpoolReader(self, cancelled)

    def wait_for_data(self, offset: int, cancelled: threading.Event) -> bool:
        """Block until there are bytes past ``offset``; ``False`` once the upload is over."""
        with self._changed:
            while True:
                if self.error:
                    raise IntakeError(self.error)
                if self.size > offset:
                    return True
                if self.finished:
                    return False
                if cancelled.is_set():
                    raise JobCancelled()
                self._changed.wait(_WAIT_SECONDS)


class SpoolReader(io.RawIOBase):
    """Reads a :class:`Spool` from the start, waiting for more data until the upload ends."""

    def __init__(self, spool: Spool, cancelled: threading.Event) -> None:
        self._spool = spool
        self._cancelled = cancelled
        self._file = open(spool.path, "rb")  # noqa: SIM115 - closed in close()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            if self._cancelled.is_set():
                raise JobCancelled()
            count = self._file.readinto(buffer)
            if count:
                self.bytes_read += count
                return count
            if not self._spool.wait_for_data(self.bytes_read, self._cancelled):
                return 0

    def close(self) -> None:
        self._file.close()
        super().close()


class PartsReader(io.RawIOBase):
    """Reads multipart upload files in order, dropping the header row of parts after the first."""

    def __init__(self, paths: list[Path], cancelled: threading.Event) -> None:
        self._paths = list(paths)
        self._cancelled = cancelled
        self._current: BinaryIO | None = None
        self._index = -1
        self.bytes_read = 0
        self.bytes_total = sum(path.stat().st_size for path in paths)

    def readable(self) -> bool:
        return True

    def _next_part(self) -> bool:
        if self._current is not None:
            self._current.close()
            self._current = None
        self._index += 1
        if self._index >= len(self._paths):
            return False
        self._current = open(self._paths[self._index], "rb")  # noqa: SIM115 - closed in close()
        if self._index > 0:
            self.bytes_read += len(self._current.readline())
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            if self._cancelled.is_set():
                raise JobCancelled()
            if self._current is None and not self._next_part():
                return 0
            assert self._current is not None
            count = self._current.readinto(buffer)  # type: ignore[attr-defined]
            if count:
                self.bytes_read += count
                return int(count)
            if not self._next_part():
                return 0

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


class UploadState:
    """Uploads of one job: the single spool or the multipart parts.

    :param job_dir: the job's directory.
    """

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.spool: Spool | None = None
        self.parts: dict[int, Path] = {}
        self.finalized = False
        self.lock = threading.Lock()

    @property
    def parts_dir(self) -> Path:
        return self.job_dir / "parts"

    def part_paths(self) -> list[Path]:
        return [self.parts[index] for index in sorted(self.parts)]


class UploadRegistry:
    """Upload state per job id (in memory: an upload does not survive a restart, nor does its job)."""

    def __init__(self) -> None:
        self._states: dict[str, UploadState] = {}
        self._lock = threading.Lock()

    def state(self, job_id: str, job_dir: Path) -> UploadState:
        with self._lock:
            state = self._states.get(job_id)
            if state is None:
                state = self._states[job_id] = UploadState(job_dir)
            return state

    def get(self, job_id: str) -> UploadState | None:
        with self._lock:
            return self._states.get(job_id)

    def discard(self, job_id: str) -> None:
        with self._lock:
            self._states.pop(job_id, None)
