"""A worker of shmbox.Pool: an interpreter the pool started, serving it until it ends."""

import base64
import pickle
import sys
import traceback
from multiprocessing import spawn

from . import _shmbox


def main(preparation: str) -> None:
    # The pool's sys.path, working directory and main module (as __mp_main__), so that its
    # functions unpickle here.
    spawn.prepare(pickle.loads(base64.b64decode(preparation)))
    name = _shmbox.pool_to_serve()
    if name is None:
        sys.exit("shmbox: this program serves the pools that shmbox.Pool starts")
    _shmbox.serve_pool(name, run)


def run(task: bytes) -> bytes:
    """One chunk: (True, its results) or (False, the exception, its traceback)."""
    func, items, star = pickle.loads(task)
    try:
        results = [func(*item) if star else func(item) for item in items]
        return pickle.dumps((True, results), pickle.HIGHEST_PROTOCOL)
    except BaseException as error:  # noqa: B036 (raised again in the pool's process)
        trace = traceback.format_exc()
        try:
            return pickle.dumps((False, error, trace), pickle.HIGHEST_PROTOCOL)
        except Exception:  # an exception that does not pickle travels as its text
            return pickle.dumps((False, RuntimeError(repr(error)), trace), pickle.HIGHEST_PROTOCOL)
