"""Boards from Python: one value with a version, shared with the C++ tool and other
processes; conditional writes, read-modify-write and watching."""

import threading

import pytest

import shmbox


def test_the_cpp_tool_and_python_share_a_board(name, cli):
    cli("board", "create", name)
    board = shmbox.Board.open(name)
    assert (board.name, board.version) == (name, 0)
    assert board.put(b"from python\x00\xff") == 1
    assert cli("board", "get", name).stdout == b"from python\x00\xff"
    assert cli("board", "put", name, "from c++").stdout == b"2\n"
    value = board.get()
    assert (value.data, value.version, value.skipped) == (b"from c++", 2, 0)
    assert name in shmbox.Board.list()


def test_a_watcher_in_another_process_sees_the_latest(name, spawn):
    board = shmbox.Board.create(name, max_size=64)
    watcher = spawn("""
        import sys, shmbox
        board = shmbox.Board.open(sys.argv[1])
        seen = board.watch(0, timeout=30)
        print(seen.data.decode(), seen.version)
    """, name)
    board.put(b"first")
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert out.split() == [b"first", b"1"]


def test_put_if_and_update(name):
    board = shmbox.Board.create(name)
    version = board.put(b"1")
    assert board.put_if(version, b"2") == 2
    with pytest.raises(shmbox.Conflict) as conflict:
        board.put_if(version, b"3")
    assert str(conflict.value) == f"board '{name}': version 1 is no longer the latest: version 2 is"
    assert board.update(lambda old: str(int(old) * 10).encode()) == 3
    assert board.get().data == b"20"

    def refuse(old):
        raise ValueError("not this one")

    with pytest.raises(ValueError, match="not this one"):
        board.update(refuse)
    assert board.version == 3  # nothing published


def test_updates_from_threads_and_processes_are_never_lost(name, spawn):
    board = shmbox.Board.create(name)
    board.put(b"0")
    increment = """
        import sys, shmbox
        board = shmbox.Board.open(sys.argv[1])
        for _ in range(200):
            board.update(lambda old: str(int(old) + 1).encode())
    """
    others = [spawn(increment, name) for _ in range(2)]

    def add_here():
        for _ in range(200):
            board.update(lambda old: str(int(old) + 1).encode())

    threads = [threading.Thread(target=add_here) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in others:
        _, err = other.communicate(timeout=60)
        assert other.returncode == 0, err
    assert board.get().data == b"800"


def test_watch_waits_and_a_removed_board_closes_it(name):
    board = shmbox.Board.create(name, ownership="system")
    with pytest.raises(shmbox.WouldBlock):
        board.watch(0, timeout=0)
    with pytest.raises(shmbox.Timeout, match=f"^board '{name}': "):
        board.watch(0, timeout=0.1)
    shmbox.Board.remove(name)
    with pytest.raises(shmbox.Closed, match=f"^board '{name}': "):
        board.watch(0, timeout=5)


def test_errors(name):
    with pytest.raises(shmbox.NotFound) as missing:
        shmbox.Board.open(name)
    assert str(missing.value) == f"board '{name}': cannot open: does not exist (No such file or directory)"
    with pytest.raises(shmbox.InvalidArgument, match="^ownership 'mine': is not one of process, system$"):
        shmbox.Board.create(name, ownership="mine")
    board = shmbox.Board.open_or_create(name, max_size=8)
    assert board.max_size == 8
    with pytest.raises(shmbox.TooLarge) as too_large:
        board.put(b"123456789")
    assert str(too_large.value) == f"board '{name}': a value of 9 bytes is over its maximum of 8"
    with pytest.raises(shmbox.InvalidArgument, match="one contiguous run"):
        board.put(memoryview(b"abcdef")[::2])
    with pytest.raises(shmbox.AlreadyExists):
        shmbox.Board.create(name)
