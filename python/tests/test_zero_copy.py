"""Loans and messages in place: bytes written and read where they lie in the mailbox, views
that cannot outlive what they show, and nothing lost when a holder is killed."""

import base64
import gc
import json
import time
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import shmbox


def test_a_loan_is_written_in_place_and_committed_at_the_end_of_the_block(name, cli):
    box = shmbox.Mailbox.create(name, max_message_size=64, ownership="system")
    with box.loan(5) as room:
        room[:] = b"hello"
    assert box.queued == 1
    assert cli("recv", name, "--count", "1").stdout == b"hello\n"  # the C++ tool reads it
    loan = box.loan(64)
    np.frombuffer(loan.data, dtype=np.uint8)[:3] = [1, 2, 3]  # numpy writes in place
    loan.commit(3)
    assert box.receive(timeout=0) == b"\x01\x02\x03"


def test_a_block_that_raises_abandons_its_loan(name):
    box = shmbox.Mailbox.create(name)
    with pytest.raises(RuntimeError):
        with box.loan(8) as room:
            room[:2] = b"no"
            raise RuntimeError("changed my mind")
    assert box.queued == 0
    with pytest.raises(shmbox.WouldBlock):
        box.receive(timeout=0)


def test_no_view_outlives_the_bytes_it_shows(name):
    box = shmbox.Mailbox.create(name)
    loan = box.loan(8)
    part = loan.data[2:4]  # a view of the loan's view
    with pytest.raises(BufferError):
        loan.commit()  # it still shows the room: nothing sent
    assert box.queued == 0
    del part
    room = loan.data
    loan.commit()
    with pytest.raises(ValueError):
        room[0]  # released with the commit: the room is the receiver's now
    with pytest.raises(shmbox.InvalidArgument, match=f"^mailbox '{name}': this loan was committed or abandoned$"):
        loan.data
    message = box.receive_in_place(timeout=0)
    view = message.data[:]
    assert view.readonly and len(view) == 8
    with pytest.raises(shmbox.InvalidArgument, match="loans or messages in place of this handle are still held"):
        box.detach()
    del message
    gc.collect()
    assert len(view) == 8  # the view keeps the message: still readable, not yet given back
    del view
    gc.collect()
    box.detach()


def test_a_message_in_place_is_read_by_numpy_and_released_at_the_end_of_the_block(name):
    box = shmbox.Mailbox.create(name)
    box.send(np.arange(8, dtype=np.int64))
    with box.receive_in_place(timeout=0) as message:
        assert np.frombuffer(message, dtype=np.int64).sum() == 28
    assert box.queued == 0


def test_a_message_put_back_comes_first_with_its_sequence(name):
    box = shmbox.Mailbox.create(name)
    box.send(b"first")
    box.send(b"second")
    message = box.receive_in_place(timeout=0)
    sequence = message.sequence
    message.requeue()
    again = box.receive_in_place(timeout=0)
    assert (bytes(again.data), again.sequence) == (b"first", sequence)
    again.release()


def test_a_block_that_raises_with_a_view_alive_still_puts_its_message_back(name):
    box = shmbox.Mailbox.create(name)
    box.send(b"keep me")
    box.send(b"next")
    with pytest.raises(RuntimeError):
        with box.receive_in_place() as data:
            head = data[:4]  # still alive when the block raises: the message waits for it
            raise RuntimeError("not done with it")
    assert bytes(head) == b"keep"
    del head
    gc.collect()
    assert box.receive(timeout=0) == b"keep me"  # back, first in line
    assert box.receive(timeout=0) == b"next"


def test_a_receiver_killed_holding_a_message_in_place_loses_nothing(name):
    box = shmbox.Mailbox.create(name, ownership="system")
    box.send(b"precious")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time, shmbox
        message = shmbox.Mailbox.open(sys.argv[1]).receive_in_place(timeout=10)
        print(bytes(message.data).decode(), flush=True)
        time.sleep(60)
    """), name], stdout=subprocess.PIPE)
    assert holder.stdout.readline() == b"precious\n"
    with pytest.raises(shmbox.WouldBlock):
        box.receive(timeout=0)  # held by the other process: nobody else gets it meanwhile
    holder.kill()
    holder.wait()
    assert box.receive(timeout=10) == b"precious"  # recovered from the dead holder


def test_a_topic_loan_written_by_numpy_reaches_the_cpp_tool(name, cli):
    topic = shmbox.Topic.create(name, history=8, max_message_size=64, max_publishers=1)
    publisher = topic.publisher()
    with publisher.loan(3) as room:
        np.frombuffer(room, dtype=np.uint8)[:] = [1, 2, 3]
    with pytest.raises(RuntimeError):
        with publisher.loan(8) as room:
            room[:2] = b"no"
            raise RuntimeError("given back, not published")
    loan = publisher.loan(4)
    loan.data[:] = b"last"
    assert loan.publish(timeout=5) == 2
    out = cli("topic", "sub", name, "--history", "--count", "2", "--nonblock", "--json").stdout
    assert [base64.b64decode(json.loads(line)["data"]) for line in out.splitlines()] == [b"\x01\x02\x03", b"last"]


def test_a_subscriber_reads_in_place_what_the_cpp_tool_published(name, cli):
    topic = shmbox.Topic.create(name, held_per_subscriber=2)
    subscriber = topic.subscribe()
    cli("topic", "pub", name, "one", "two", "three")
    with subscriber.receive_in_place(timeout=5) as data:
        assert bytes(data) == b"one" and data.readonly
    first = subscriber.receive_in_place(timeout=5)
    second = subscriber.receive_in_place(timeout=5)
    assert (bytes(first.data), first.sequence, first.lost) == (b"two", 2, 0)
    assert bytes(second.data) == b"three"
    view = first.data[:1]
    with pytest.raises(BufferError):
        first.release()  # a view derived from it is alive
    view.release()
    first.release()
    with pytest.raises(shmbox.InvalidArgument, match=f"^topic '{name}': this message was released$"):
        first.data
    second.release()


def test_a_message_let_go_while_another_thread_waits_on_its_handle_is_given_back_meanwhile(name):
    import threading
    box = shmbox.Mailbox.create(name, capacity=1)
    box.send(b"held")
    held = box.receive_in_place(timeout=0)
    got = []
    waiting = threading.Thread(target=lambda: got.append(box.receive(timeout=30)))
    waiting.start()
    time.sleep(0.3)  # inside its receive on the same handle
    del held  # given back between the slices of that wait, not after it
    gc.collect()
    shmbox.Mailbox.open(name).send(b"next", timeout=10)  # needs the slot the held message kept
    waiting.join()
    assert got == [b"next"]
