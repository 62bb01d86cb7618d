"""Robust locks from Python: shared with the C++ tool, exclusive and shared holds, and a
holder killed with SIGKILL told to the next taker."""

import os
import signal

import pytest

import shmbox


def test_the_cpp_tool_and_python_exclude_each_other(name, cli):
    holder = cli.start("lock", name, "--", "sh", "-c", "echo held; cat >/dev/null")
    assert holder.stdout.readline() == b"held\n"
    lock = shmbox.Lock.open(name)
    with pytest.raises(shmbox.WouldBlock, match=f"^lock '{name}': "):
        lock.acquire(timeout=0)
    holder.stdin.close()  # the tool's command ends, and the tool lets go
    with lock.acquire(timeout=30) as held:
        assert not held.owner_died and not held.shared
        assert holder.wait(timeout=30) == 0
        assert cli("lock", "--nonblock", name, "--", "true", check=False).returncode == 75


def test_readers_share_and_a_writer_waits_for_them(name):
    first, second = shmbox.Lock.create(name), shmbox.Lock.open(name)
    writer = shmbox.Lock.open(name)
    with first.acquire(shared=True) as one, second.acquire(shared=True) as two:
        assert one.shared and two.shared
        with pytest.raises(shmbox.Timeout, match=f"^lock '{name}': "):
            writer.acquire(timeout=0.05)
    with writer.acquire(timeout=5):
        with pytest.raises(shmbox.WouldBlock):
            first.acquire(shared=True, timeout=0)


def test_a_holder_killed_is_told_to_the_next_taker(name, spawn):
    lock = shmbox.Lock.create(name)
    holder = spawn("""
        import sys, time, shmbox
        held = shmbox.Lock.open(sys.argv[1]).acquire()
        print("held", flush=True)
        time.sleep(60)
    """, name)
    assert holder.stdout.readline() == b"held\n"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    with lock.acquire(timeout=10) as held:
        assert held.owner_died and held.died_holding == holder.pid
        held.mark_consistent()
    with lock.acquire(timeout=10) as held:
        assert not held.owner_died
        with pytest.raises(shmbox.InvalidArgument, match=f"^lock '{name}': "):
            held.mark_consistent()  # nothing to repair


def test_a_death_left_unrepaired_makes_the_lock_unrecoverable(name, spawn):
    lock = shmbox.Lock.create(name)
    holder = spawn("""
        import os, signal, sys, shmbox
        held = shmbox.Lock.open(sys.argv[1]).acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    """, name)
    holder.wait(timeout=30)
    with lock.acquire(timeout=10) as held:
        assert held.owner_died  # released unrepaired at the end of the block
    with pytest.raises(shmbox.NotRecoverable, match=f"^lock '{name}': "):
        lock.acquire(timeout=0)


def test_a_lock_inside_a_segment_beside_its_data(name):
    with shmbox.Segment.create(name, 4096) as segment:
        lock = shmbox.Lock.create_in(name, 1024, max_handles=4)
        assert shmbox.Lock.footprint(4) <= 4096 - 1024
        other = shmbox.Lock.open_in(name, 1024)
        with lock.acquire():
            segment.memory[:5] = b"guard"
            with pytest.raises(shmbox.WouldBlock):
                other.acquire(timeout=0)
        with other.acquire(timeout=0):
            assert bytes(segment.memory[:5]) == b"guard"


def test_errors(name):
    with pytest.raises(shmbox.NotFound, match=f"^lock '{name}': "):
        shmbox.Lock.open(name)
    lock = shmbox.Lock.create(name)
    with pytest.raises(shmbox.AlreadyExists):
        shmbox.Lock.create(name)
    held = lock.acquire()
    with pytest.raises(shmbox.InvalidArgument, match=f"^lock '{name}': "):
        lock.acquire(timeout=0)  # a handle holds it once at a time
    held.release()
    held.release()  # again: nothing
    with pytest.raises(shmbox.InvalidArgument) as released:
        held.mark_consistent()
    assert str(released.value) == f"lock '{name}': was released already"
    assert name in shmbox.Lock.list()
