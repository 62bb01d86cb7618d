"""shmbox.Pool: Python functions over worker processes, exact with workers killed."""

import os
import pickle
import signal
import subprocess
import sys

import pytest

import shmbox


def square(x):
    return x * x


def scaled(x, factor=1):
    return x * factor


def raise_on_three(x):
    if x == 3:
        raise KeyError(x)
    return x


def die_once(item):
    """Kills its worker with SIGKILL the first time it sees a multiple of 4 (a marker file
    says so): the pool must run it again elsewhere."""
    value, markers = item
    if value % 4 != 0:
        return value * value
    try:
        os.close(os.open(os.path.join(markers, str(value)), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return value * value
    os.kill(os.getpid(), signal.SIGKILL)


identity = lambda x: x  # noqa: E731 (pickled by name, which a lambda has not)


def die_always(x):
    os.kill(os.getpid(), signal.SIGKILL)


def test_map_imap_starmap_and_apply_give_every_result():
    with shmbox.Pool(2) as pool:
        assert pool.map(square, range(100)) == [x * x for x in range(100)]
        assert pool.map(square, iter(range(10)), chunksize=3) == [x * x for x in range(10)]
        assert list(pool.imap(square, range(20))) == [x * x for x in range(20)]
        assert sorted(pool.imap_unordered(square, range(20), chunksize=4)) == [x * x for x in range(20)]
        assert pool.starmap(pow, [(2, 3), (3, 2), (10, 0)]) == [8, 9, 1]
        assert pool.apply(scaled, (4,), {"factor": 3}) == 12
        assert pool.map(square, []) == []
        assert len(pool.worker_pids) == 2 and os.getpid() not in pool.worker_pids


def big(x):
    return b"x" * 4096


def test_the_functions_exception_is_raised_again_with_the_workers_traceback():
    with shmbox.Pool(2) as pool:
        with pytest.raises(KeyError) as raised:
            pool.map(raise_on_three, range(60), chunksize=1)
        assert raised.value.args == (3,)
        assert isinstance(raised.value.__cause__, shmbox.pool.RemoteTraceback)
        assert "raise_on_three" in str(raised.value.__cause__)
        # The pool goes on, and what the failed map left unclaimed is nobody else's.
        assert pool.map(square, range(4)) == [0, 1, 4, 9]
        assert sorted(pool.imap_unordered(square, range(30))) == [x * x for x in range(30)]


def test_calls_in_turn_and_at_once_get_only_their_own_results():
    with shmbox.Pool(2) as pool:
        left = pool.imap(square, range(100))
        assert [next(left) for _ in range(3)] == [0, 1, 4]
        del left  # abandoned with tasks out
        together = list(zip(pool.imap(square, range(50)), sorted(pool.imap_unordered(scaled, range(50)))))
        assert together == [(x * x, x) for x in range(50)]
        assert sorted(pool.imap_unordered(square, range(40), chunksize=3)) == [x * x for x in range(40)]
        assert pool.apply(square, (9,)) == 81


def test_workers_killed_mid_task_lose_nothing(tmp_path):
    with shmbox.Pool(2) as pool:
        results = pool.map(die_once, [(x, str(tmp_path)) for x in range(40)], chunksize=1)
        assert results == [x * x for x in range(40)]
        assert pool.progress["workers_replaced"] == 10
    assert len(os.listdir(tmp_path)) == 10


def test_a_task_that_kills_its_worker_every_time_fails_after_its_attempts():
    with shmbox.Pool(1, attempts=2) as pool:
        with pytest.raises(shmbox.TaskFailed) as raised:
            pool.apply(die_always, (1,))
        assert str(raised.value) == (f"pool '{pool.name}': task 0 failed after 2 attempts: "
                                     "its worker died during each of its 2 attempts")
        assert pool.apply(square, (5,)) == 25


def test_a_script_that_makes_a_pool_unguarded_fails_instead_of_multiplying(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text("import shmbox\n"
                      "def square(x):\n"
                      "    return x * x\n"
                      "print(shmbox.Pool(2).map(square, range(4)))\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=120)
    assert run.returncode != 0
    assert b"a worker failed" in run.stderr
    assert b"bootstrapping phase" in run.stderr  # multiprocessing's explanation, from the worker


def test_errors(name):
    with shmbox.Pool(1, name=name, max_result_size=1024) as pool:
        with pytest.raises(shmbox.TooLarge) as too_large:
            pool.map(big, range(2), chunksize=1)
        assert str(too_large.value).startswith(f"pool '{name}': a result of ")
        assert pool.progress["workers_replaced"] == 0
        with pytest.raises(ValueError, match=f"^pool '{name}': chunksize must be at least 1$"):
            pool.map(square, range(3), chunksize=0)
        with pytest.raises(ValueError, match=f"^pool '{name}': is still running: close"):
            pool.join()
    with shmbox.Pool(1, name=name, max_task_size=4096) as pool:
        assert pool.name == name
        with pytest.raises(pickle.PicklingError):
            pool.map(identity, range(3))
        with pytest.raises(shmbox.TooLarge) as raised:
            pool.apply(len, (b"x" * 8192,))
        assert str(raised.value).startswith(f"pool '{name}': a task of ")
        assert str(raised.value).endswith(" bytes is over its max_task_size of 4096")
        pool.close()
        with pytest.raises(ValueError, match=f"^pool '{name}': is closed$"):
            pool.map(square, range(3))
    with pytest.raises(ValueError, match="^pool 'p': processes must be at least 1$"):
        shmbox.Pool(0, name="p")
