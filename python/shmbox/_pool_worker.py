"""A worker of shmbox.Pool: an interpreter the pool started, serving it until it ends."""

import base64
import pickle
import signal
import sys
import traceback
from multiprocessing import process, spawn

from . import _shmbox
from .errors import TooLarge


def main(preparation: str, max_result_size: int) -> None:
    # Ctrl-C in the terminal reaches the workers too: it is the pool's process's to handle.
    # A handler that does nothing, not SIG_IGN, which programs a task starts would inherit.
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    # The pool's sys.path, working directory and main module (as __mp_main__), so that its
    # functions unpickle here; marked as multiprocessing marks its children meanwhile, so
    # that a script that makes a pool outside `if __name__ == "__main__":` fails here with
    # multiprocessing's explanation instead of starting workers of its own.
    process.current_process()._inheriting = True
    try:
        spawn.prepare(pickle.loads(base64.b64decode(preparation)))
    finally:
        del process.current_process()._inheriting
    name = _shmbox.pool_to_serve()
    if name is None:
        sys.exit("shmbox: this program serves the pools that shmbox.Pool starts")
    _shmbox.serve_pool(name, lambda task: run(task, name, max_result_size))


def run(task: bytes, name: str, max_result_size: int) -> bytes:
    """One chunk: (True, its results) or (False, the exception, its traceback). An exception
    is the caller's to see once, not a reason to try again; a worker's death is."""
    try:
        func, items, star = pickle.loads(task)
        results = pickle.dumps((True, [func(*item) if star else func(item) for item in items]),
                               pickle.HIGHEST_PROTOCOL)
        if len(results) > max_result_size:
            raise TooLarge(f"pool '{name}': a result of {len(results)} bytes is over its max_result_size of "
                           f"{max_result_size}", f"pool '{name}'",
                           f"a result of {len(results)} bytes is over its max_result_size of {max_result_size}")
        return results
    except Exception as error:
        trace = traceback.format_exc()
        try:
            failure = pickle.dumps((False, error, trace), pickle.HIGHEST_PROTOCOL)
        except Exception:  # an exception that does not pickle travels as its text
            failure = pickle.dumps((False, RuntimeError(repr(error)), trace), pickle.HIGHEST_PROTOCOL)
        if len(failure) > max_result_size:  # cut to fit rather than be taken for a worker's death
            keep = max(max_result_size // 4, 64)
            failure = pickle.dumps((False, RuntimeError(repr(error)[:keep]), trace[-keep:]), pickle.HIGHEST_PROTOCOL)
        return failure
