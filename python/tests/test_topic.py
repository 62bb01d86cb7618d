"""Topics from Python: every subscriber gets every message, in order, with the C++ tool on the
other side, history for late subscribers, and losses told on an overwriting topic."""

import subprocess
import sys
import textwrap

import pytest

import shmbox


@pytest.mark.parametrize("publishers", [8, 1])
def test_every_subscriber_gets_every_message_in_order(name, publishers):
    topic = shmbox.Topic.create(name, capacity=16, max_publishers=publishers, ownership="system")
    readers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, shmbox
        subscriber = shmbox.Topic.open(sys.argv[1]).subscribe()
        print("subscribed", flush=True)
        got = [subscriber.receive(timeout=10) for _ in range(500)]
        ok = all(m.data == str(n).encode() and m.sequence == n + 1 and m.lost == 0 for n, m in enumerate(got))
        print("in order" if ok else "wrong", flush=True)
    """), name], stdout=subprocess.PIPE) for _ in range(2)]
    for reader in readers:
        assert reader.stdout.readline() == b"subscribed\n"
    publisher = topic.publisher()
    for n in range(500):
        assert publisher.publish(str(n).encode(), timeout=10) == n + 1
    for reader in readers:
        out, _ = reader.communicate(timeout=60)
        assert out == b"in order\n"


def test_the_cpp_tool_and_python_publish_to_each_other(name, cli):
    topic = shmbox.Topic.create(name, history=4, ownership="system")
    subscriber = topic.subscribe()
    cli("topic", "pub", name, "from", "c++")
    assert [subscriber.receive(timeout=5).data for _ in range(2)] == [b"from", b"c++"]
    topic.publisher().publish(b"from python")
    # A late subscriber (the tool) asks for the history: all three.
    out = cli("topic", "sub", name, "--history", "--count", "3").stdout
    assert out == b"from\nc++\nfrom python\n"


def test_an_overwriting_topic_tells_a_slow_subscriber_what_it_lost(name):
    topic = shmbox.Topic.create(name, capacity=4, overflow="overwrite")
    subscriber = topic.subscribe()
    publisher = topic.publisher()
    for n in range(10):
        publisher.publish(bytes([n]), timeout=0)  # never waits
    first = subscriber.receive(timeout=0)
    assert (first.data, first.sequence, first.lost) == (bytes([6]), 7, 6)
    assert subscriber.lost == 6


def test_a_full_blocking_topic_and_a_removed_one(name):
    topic = shmbox.Topic.create(name, capacity=2, max_publishers=1)
    subscriber = topic.subscribe()
    publisher = topic.publisher()
    publisher.publish(b"1")
    publisher.publish(b"2")
    with pytest.raises(shmbox.WouldBlock, match=f"^topic '{name}': is full"):
        publisher.publish(b"3", timeout=0)
    with pytest.raises(shmbox.Timeout, match=f"^topic '{name}': timed out waiting for a subscriber to read$"):
        publisher.publish(b"3", timeout=0.1)
    with pytest.raises(shmbox.InUse, match=f"^topic '{name}': has no publisher slot free: all 1 are held"):
        topic.publisher()
    shmbox.Topic.remove(name)
    # What it had not read yet, then the iteration ends at the removal.
    assert [message.data for message in subscriber] == [b"1", b"2"]


def test_errors(name):
    with pytest.raises(shmbox.NotFound, match=f"^topic '{name}'"):
        shmbox.Topic.open(name)
    with pytest.raises(shmbox.InvalidArgument, match=f"^topic '{name}': history 5 is over its capacity of 4$"):
        shmbox.Topic.create(name, capacity=4, history=5)
    with pytest.raises(shmbox.InvalidArgument, match="^overflow 'drop': is not one of block, overwrite$"):
        shmbox.Topic.create(name, overflow="drop")
    topic = shmbox.Topic.create(name, max_message_size=4)
    with pytest.raises(shmbox.TooLarge, match=f"^topic '{name}': a message of 5 bytes is over its maximum of 4$"):
        topic.publisher().publish(b"12345")
