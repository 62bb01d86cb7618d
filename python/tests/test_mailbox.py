"""Mailboxes from Python: every waiting form, across real processes, with the C++ tool as
the other side, and nothing lost when a receiver is interrupted or killed while it waits."""

import signal
import time

import pytest

import shmbox


def test_send_and_receive_any_buffer(name):
    import numpy as np
    with shmbox.Mailbox.create(name, capacity=4, max_message_size=64) as box:
        assert (box.name, box.buffering, box.capacity, box.max_message_size) == (name, "bounded", 4, 64)
        box.send(b"bytes")
        box.send(bytearray(b"bytearray"))
        box.send(memoryview(b"view"))
        box.send(np.arange(3, dtype=np.uint8))
        assert box.queued == 4
        assert [box.receive() for _ in range(4)] == [b"bytes", b"bytearray", b"view", b"\x00\x01\x02"]


def test_waiting_forms(name):
    box = shmbox.Mailbox.create(name, capacity=1)
    with pytest.raises(shmbox.WouldBlock, match=f"^mailbox '{name}'"):
        box.receive(timeout=0)
    started = time.monotonic()
    with pytest.raises(shmbox.Timeout, match=f"^mailbox '{name}': timed out"):
        box.receive(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    box.send(b"one")
    with pytest.raises(shmbox.WouldBlock):
        box.send(b"two", timeout=0)  # full: nothing sent
    assert box.queued == 1
    assert box.receive(timeout=0) == b"one"


def test_a_python_receiver_in_another_process(name, spawn):
    box = shmbox.Mailbox.create(name, capacity=8)
    receiver = spawn("""
        import sys, shmbox
        box = shmbox.Mailbox.open(sys.argv[1])
        print(",".join(m.decode() for m in box))  # until closed and drained
    """, name)
    for n in range(100):
        box.send(str(n).encode())
    box.close()
    out, err = receiver.communicate(timeout=60)
    assert receiver.returncode == 0, err
    assert out.decode().strip() == ",".join(str(n) for n in range(100))
    with pytest.raises(shmbox.Closed, match=f"^mailbox '{name}'"):
        box.send(b"late")


def test_zero_buffering_is_a_rendezvous(name, spawn):
    box = shmbox.Mailbox.create(name, buffering="zero")
    sender = spawn("""
        import sys, time, shmbox
        box = shmbox.Mailbox.open(sys.argv[1])
        print("sending", flush=True)
        box.send(b"handed over")
        print("sent", flush=True)
    """, name)
    assert sender.stdout.readline() == b"sending\n"
    time.sleep(0.5)
    assert sender.poll() is None  # its send waits for a receive
    assert box.receive(timeout=10) == b"handed over"
    out, err = sender.communicate(timeout=60)
    assert sender.returncode == 0, err
    assert out == b"sent\n"


def test_the_cpp_tool_and_python_exchange_messages(name, cli):
    box = shmbox.Mailbox.create(name, ownership="system")
    cli("send", name, "from", "c++")
    assert [box.receive(timeout=5), box.receive(timeout=5)] == [b"from", b"c++"]
    box.send(b"from python")
    assert cli("recv", name, "--count", "1").stdout == b"from python\n"


def test_ctrl_c_interrupts_a_wait_and_loses_nothing(name, spawn):
    box = shmbox.Mailbox.create(name, ownership="system")
    receiver = spawn("""
        import sys, shmbox
        box = shmbox.Mailbox.open(sys.argv[1])
        try:
            print("waiting", flush=True)  # a signal from here on is caught below
            box.receive()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """, name)
    assert receiver.stdout.readline() == b"waiting\n"
    time.sleep(0.3)  # inside the wait
    receiver.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, err = receiver.communicate(timeout=10)
    assert out == b"interrupted\n", err
    assert time.monotonic() - started < 5  # the wait saw it (within 100 ms but for a loaded machine)
    box.send(b"after")
    assert box.receive(timeout=0) == b"after"


def test_a_receiver_killed_while_it_waits_takes_nothing_with_it(name, spawn):
    box = shmbox.Mailbox.create(name, ownership="system")
    receivers = [spawn("""
        import sys, shmbox
        box = shmbox.Mailbox.open(sys.argv[1])
        print("waiting", flush=True)
        print(box.receive().decode(), flush=True)
    """, name) for _ in range(2)]
    for receiver in receivers:
        assert receiver.stdout.readline() == b"waiting\n"
    time.sleep(0.35)  # several of the 100 ms slices a wait is made of
    receivers[0].kill()
    receivers[0].wait()
    box.send(b"for the survivor")
    out, err = receivers[1].communicate(timeout=30)
    assert out == b"for the survivor\n", err


def test_a_handle_is_one_threads_at_a_time(name):
    import threading
    box = shmbox.Mailbox.create(name)

    got = []
    entering = threading.Event()

    def wait():
        entering.set()
        got.append(box.receive(timeout=30))

    waiting = threading.Thread(target=wait)
    waiting.start()
    entering.wait()
    time.sleep(0.5)  # inside its receive, the GIL released
    for call in (lambda: box.send(b"x"), box.detach):
        with pytest.raises(shmbox.InvalidArgument, match="in use by another thread: give each thread its own"):
            call()
    other = shmbox.Mailbox.open(name)  # a handle of its own works
    other.send(b"for the waiter")
    waiting.join()
    assert got == [b"for the waiter"]


def test_a_zero_capacity_loan_waits_in_one_piece_for_a_late_receiver(name, spawn):
    box = shmbox.Mailbox.create(name, buffering="zero")
    receiver = spawn("""
        import sys, time, shmbox
        box = shmbox.Mailbox.open(sys.argv[1])
        time.sleep(0.5)  # several of the 100 ms a sliced wait would take
        print(box.receive(timeout=10).decode(), flush=True)
    """, name)
    with box.loan(4) as room:
        room[:] = b"late"
    out, err = receiver.communicate(timeout=60)
    assert out == b"late\n", err


def test_a_block_that_raises_puts_its_message_back(name):
    box = shmbox.Mailbox.create(name)
    box.send(b"again")
    with pytest.raises(RuntimeError):
        with box.receive_in_place(timeout=0) as message:
            assert bytes(message) == b"again"
            raise RuntimeError("could not handle it")
    assert box.receive(timeout=0) == b"again"
