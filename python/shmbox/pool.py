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
import os
import pickle
import sys
from multiprocessing import spawn
from typing import Any, Callable, Iterable, Iterator

from . import _shmbox

__all__ = ["Pool", "RemoteTraceback"]

# What a worker runs: finds this package where the pool's process found it, then serves.
_WORKER_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from shmbox._pool_worker import main; main(sys.argv[2])")


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
            raise ValueError("processes must be at least 1")
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        # What multiprocessing's spawn gives its children, but its key (for its own
        # connections, which the workers do not use; it refuses to be pickled).
        preparation_data = spawn.get_preparation_data("shmbox-pool-worker")
        preparation_data.pop("authkey", None)
        preparation = base64.b64encode(pickle.dumps(preparation_data)).decode()
        self._pool = _shmbox._Pool.exec([sys.executable, "-c", _WORKER_BOOT, package_parent, preparation],
                                        name=name, workers=processes or 0, attempts=attempts,
                                        max_task_size=max_task_size, max_result_size=max_result_size)
        self._workers = len(self._pool.worker_pids)
        self._closed = False

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
        self._check_open()
        task = self._pool.submit(pickle.dumps((_Call(func, kwds or {}), [tuple(args)], True), pickle.HIGHEST_PROTOCOL))
        return _unpack(self._pool.result(task))[0]

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        """[func(x) for x in iterable], computed by the workers, in input order."""
        return list(self._ordered(func, iterable, chunksize, star=False))

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]],
                chunksize: int | None = None) -> list[Any]:
        """[func(*args) for args in iterable], in input order."""
        return list(self._ordered(func, iterable, chunksize, star=True))

    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        """func(x) for each x, lazily, in input order."""
        return self._ordered(func, iterable, chunksize, star=False)

    def imap_unordered(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        """func(x) for each x, lazily, in the order they finish."""
        self._check_open()
        out = 0
        for task in self._tasks(func, iterable, chunksize, star=False):
            self._pool.submit(task)
            out += 1
            while out >= self._window():
                out -= 1
                yield from _unpack(self._pool.next_finished()[1])
        for _ in range(out):
            yield from _unpack(self._pool.next_finished()[1])

    def close(self) -> None:
        """No more tasks; join() then waits for nothing (every call waits for its results)."""
        self._closed = True

    def join(self) -> None:
        """Stops the workers (after close(): every result was already handed out)."""
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

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"pool '{self.name}': is closed")

    def _tasks(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None,
               star: bool) -> Iterator[bytes]:
        if chunksize is None:
            if not hasattr(iterable, "__len__"):
                iterable = list(iterable)
            # As multiprocessing does: about four chunks per worker.
            chunksize, extra = divmod(len(iterable), self._workers * 4)  # type: ignore[arg-type]
            chunksize += 1 if extra else 0
        if chunksize < 1:
            chunksize = 1
        chunk: list[Any] = []
        for item in iterable:
            chunk.append(tuple(item) if star else item)
            if len(chunk) == chunksize:
                yield pickle.dumps((func, chunk, star), pickle.HIGHEST_PROTOCOL)
                chunk = []
        if chunk:
            yield pickle.dumps((func, chunk, star), pickle.HIGHEST_PROTOCOL)

    def _ordered(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None,
                 star: bool) -> Iterator[Any]:
        self._check_open()
        pending: collections.deque[int] = collections.deque()
        for task in self._tasks(func, iterable, chunksize, star):
            pending.append(self._pool.submit(task))
            while len(pending) >= self._window():
                yield from _unpack(self._pool.result(pending.popleft()))
        while pending:
            yield from _unpack(self._pool.result(pending.popleft()))


class _Call:
    """func with keyword arguments, picklable when func is."""

    def __init__(self, func: Callable[..., Any], kwds: dict[str, Any]) -> None:
        self.func = func
        self.kwds = kwds

    def __call__(self, *args: Any) -> Any:
        return self.func(*args, **self.kwds)


def _unpack(result: bytes) -> list[Any]:
    """A chunk's results, or the exception its function raised, raised again here."""
    outcome = pickle.loads(result)
    if outcome[0]:
        return outcome[1]
    raise outcome[1] from RemoteTraceback(outcome[2])
