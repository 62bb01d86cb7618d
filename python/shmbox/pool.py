"""shmbox.Pool: Python functions run over many inputs by worker processes, exact even when
workers die; for the common uses of multiprocessing.Pool (map, imap, imap_unordered,
starmap, apply).

    import shmbox

    def square(x):
        return x * x

    if __name__ == "__main__":
        with shmbox.Pool(4) as pool:
            print(pool.map(square, range(10)))

Each worker is a Python interpreter the pool starts (as multiprocessing's "spawn" start
method does: functions and arguments travel pickled, and the main module is imported
under the name ``__mp_main__``). Tasks go to workers through the pool's shmbox mailboxes;
a worker killed at any instruction loses nothing: its task goes to another worker and a
replacement starts. An exception the function raises is raised again by the call that
asks for its result (with the worker's traceback as its cause); a task that kills its
worker on each of its ``attempts`` raises shmbox.TaskFailed.
"""

from __future__ import annotations

import base64
import collections
import multiprocessing
import os
import pickle
import sys
from multiprocessing import spawn
from typing import Any, Callable, Iterable, Iterator

from . import _shmbox
from . import errors as shmbox_errors

__all__ = ["Pool", "RemoteTraceback"]

# What a worker runs: finds this package where the pool's process found it, then serves.
_WORKER_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from shmbox._pool_worker import main; main(sys.argv[2], int(sys.argv[3]))")


class RemoteTraceback(Exception):
    """The traceback, in the worker, of an exception a task raised (its __cause__)."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0])


class Pool:
    """Worker processes running Python functions.

    processes: workers (None: one per CPU this process may run on). attempts: tries per task
    before a task that kills its worker fails. max_task_size / max_result_size: bytes of one
    pickled task (a chunk of inputs with the function) and result.
    """

    def __init__(self, processes: int | None = None, *, name: str = "", attempts: int = 3,
                 max_task_size: int = 1 << 20, max_result_size: int = 1 << 20) -> None:
        if processes is not None and processes < 1:
            raise ValueError(f"pool '{name}': processes must be at least 1")
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._pool = _shmbox._Pool.exec(
            [sys.executable, "-c", _WORKER_BOOT, package_parent, _preparation(), str(max_result_size)],
            name=name, workers=processes or 0, attempts=attempts, max_task_size=max_task_size,
            max_result_size=max_result_size)
        self._workers = len(self._pool.worker_pids)
        self._closed = False
        # Outcomes that next_finished() gave for a task of another call (by id), and the tasks
        # whose call went away (an iteration left, an exception) and whose outcomes go unclaimed.
        self._finished: dict[int, bytes | BaseException] = {}
        self._abandoned: set[int] = set()

    @property
    def name(self) -> str:
        """The name its mailboxes start with."""
        return self._pool.name

    @property
    def worker_pids(self) -> list[int]:
        """The workers' pids now (a replaced worker's successor in its place)."""
        return self._pool.worker_pids

    @property
    def progress(self) -> dict[str, int]:
        """Counts so far: done, failed, submitted, workers_replaced."""
        return self._pool.progress

    def apply(self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: dict[str, Any] | None = None) -> Any:
        """func(*args, **kwds) in a worker."""
        self._begin_call()
        task = self._pool.submit(pickle.dumps((_Call(func, kwds or {}), [tuple(args)], True), pickle.HIGHEST_PROTOCOL))
        try:
            outcome = self._result(task)
        except BaseException:  # its wait was interrupted: the outcome is nobody's
            self._abandon([task])
            raise
        return _unpack(outcome)[0]

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        """[func(x) for x in iterable], computed by the workers, in input order."""
        self._begin_call()
        return list(self._ordered(self._tasks(func, iterable, chunksize, star=False)))

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]],
                chunksize: int | None = None) -> list[Any]:
        """[func(*args) for args in iterable], in input order."""
        self._begin_call()
        return list(self._ordered(self._tasks(func, iterable, chunksize, star=True)))

    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        """func(x) for each x, lazily, in input order. The first exception of func ends it."""
        self._begin_call()
        return self._ordered(self._tasks(func, iterable, chunksize, star=False))

    def imap_unordered(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        """func(x) for each x, lazily, in the order they finish."""
        self._begin_call()
        return self._unordered(self._tasks(func, iterable, chunksize, star=False))

    def close(self) -> None:
        """No more tasks (every call has its results by the time it returns, but iterations)."""
        self._closed = True

    def join(self) -> None:
        """Stops the workers, once close() or terminate() was called."""
        if not self._closed:
            raise ValueError(f"pool '{self.name}': is still running: close() or terminate() it first")
        self._pool.cancel()

    def terminate(self) -> None:
        """Stops now: tasks not yet done are dropped, the workers stopped."""
        self._closed = True
        self._pool.cancel()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def __repr__(self) -> str:
        return f"<shmbox.Pool '{self.name}' workers={self._workers}>"

    # Chunks submitted ahead of the result awaited: past the pool's queue (4 per worker) and
    # the workers' hands, so that no worker waits while results come back; submit() itself
    # waits while the queue is full.
    def _window(self) -> int:
        return 8 * self._workers

    def _begin_call(self) -> None:
        """Refuses a call on a closed pool; takes in what abandoned calls left."""
        if self._closed:
            raise ValueError(f"pool '{self.name}': is closed")
        self._collect_abandoned()

    def _collect_abandoned(self) -> None:
        """Takes in the outcomes of abandoned tasks that have come, so that the pool keeps none."""
        for task in list(self._abandoned):
            try:
                self._pool.result(task, timeout=0)
            except shmbox_errors.WouldBlock:
                continue  # not yet
            except shmbox_errors.Error:
                pass  # failed, or taken already
            self._abandoned.discard(task)

    def _tasks(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None,
               star: bool) -> Iterator[bytes]:
        if chunksize is None:
            if not hasattr(iterable, "__len__"):
                iterable = list(iterable)
            # As multiprocessing does: about four chunks per worker.
            chunksize, extra = divmod(len(iterable), self._workers * 4)  # type: ignore[arg-type]
            chunksize = max(chunksize + (1 if extra else 0), 1)
        if chunksize < 1:
            raise ValueError(f"pool '{self.name}': chunksize must be at least 1")
        return self._chunks(func, iterable, chunksize, star)

    @staticmethod
    def _chunks(func: Callable[..., Any], iterable: Iterable[Any], chunksize: int, star: bool) -> Iterator[bytes]:
        chunk: list[Any] = []
        for item in iterable:
            chunk.append(tuple(item) if star else item)
            if len(chunk) == chunksize:
                yield pickle.dumps((func, chunk, star), pickle.HIGHEST_PROTOCOL)
                chunk = []
        if chunk:
            yield pickle.dumps((func, chunk, star), pickle.HIGHEST_PROTOCOL)

    def _result(self, task: int) -> bytes | BaseException:
        """Task `task`'s outcome, which another call's next_finished() may have taken."""
        if task in self._finished:
            return self._finished.pop(task)
        return self._pool.result(task)

    def _next_of(self, mine: set[int]) -> bytes | BaseException:
        """The outcome of one of the tasks `mine` (taken out of it), whichever comes first."""
        for task in mine & self._finished.keys():
            mine.discard(task)
            return self._finished.pop(task)
        while True:
            task, outcome = self._pool.next_finished()
            if task in mine:
                mine.discard(task)
                return outcome
            if task in self._abandoned:
                self._abandoned.discard(task)
            else:
                self._finished[task] = outcome

    def _abandon(self, tasks: Iterable[int]) -> None:
        for task in tasks:
            if self._finished.pop(task, None) is None:
                self._abandoned.add(task)

    def _ordered(self, tasks: Iterator[bytes]) -> Iterator[Any]:
        pending: collections.deque[int] = collections.deque()
        try:
            for task in tasks:
                pending.append(self._pool.submit(task))
                while len(pending) >= self._window():
                    yield from self._take_first(pending)
            while pending:
                yield from self._take_first(pending)
        finally:
            self._abandon(pending)

    def _take_first(self, pending: collections.deque[int]) -> list[Any]:
        """The results of the first task of `pending`, taken out of it once its outcome came
        (an interrupted wait leaves it there, to be abandoned)."""
        outcome = self._result(pending[0])
        pending.popleft()
        return _unpack(outcome)

    def _unordered(self, tasks: Iterator[bytes]) -> Iterator[Any]:
        mine: set[int] = set()
        try:
            for task in tasks:
                mine.add(self._pool.submit(task))
                while len(mine) >= self._window():
                    yield from _unpack(self._next_of(mine))
            while mine:
                yield from _unpack(self._next_of(mine))
        finally:
            self._abandon(mine)


def _preparation() -> str:
    """What multiprocessing's spawn gives its children, encoded for a worker's command line."""
    method_was_chosen = multiprocessing.get_start_method(allow_none=True) is not None
    data = spawn.get_preparation_data("shmbox-pool-worker")
    if not method_was_chosen:  # get_preparation_data chose the default: leave the choice to the program
        multiprocessing.context._default_context._actual_context = None  # type: ignore[attr-defined]
    # Not its key: for multiprocessing's own connections, which the workers do not use, and
    # it refuses to be pickled.
    data.pop("authkey", None)
    return base64.b64encode(pickle.dumps(data)).decode()


class _Call:
    """func with keyword arguments, picklable when func is."""

    def __init__(self, func: Callable[..., Any], kwds: dict[str, Any]) -> None:
        self.func = func
        self.kwds = kwds

    def __call__(self, *args: Any) -> Any:
        return self.func(*args, **self.kwds)


def _unpack(result: bytes | BaseException) -> list[Any]:
    """A chunk's results, or the exception its function raised (or the pool's TaskFailed),
    raised again here."""
    if isinstance(result, BaseException):
        raise result
    outcome = pickle.loads(result)
    if outcome[0]:
        return outcome[1]
    raise outcome[1] from RemoteTraceback(outcome[2])
