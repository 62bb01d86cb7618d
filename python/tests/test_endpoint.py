"""Endpoints (direct communication between named processes) and the selector, from Python,
across real processes and with the C++ tool as a peer."""

import time

import pytest

import shmbox


def test_direct_messages_between_named_processes(name, spawn):
    with shmbox.Endpoint.join(name, capacity=4) as server:
        assert server.name == name and name in shmbox.Endpoint.list()
        client = spawn("""
            import sys, shmbox
            server = sys.argv[1]
            with shmbox.Endpoint.join(server + "-client") as me:
                for n in range(10):
                    me.send(server, str(n).encode())
                print(me.receive_from(server, timeout=30).decode())
        """, name)
        got = [server.receive(timeout=30) for _ in range(10)]
        assert got == [(name + "-client", str(n).encode()) for n in range(10)]
        server.send(name + "-client", b"thanks")
        out, err = client.communicate(timeout=60)
        assert client.returncode == 0, err
        assert out == b"thanks\n"
    assert name not in shmbox.Endpoint.list()  # left: the name is free again


def test_the_cpp_tool_sends_to_a_python_endpoint(name, cli):
    with shmbox.Endpoint.join(name) as endpoint:
        cli("send", "--to", name, "--as", "tool", "one", "two")
        assert endpoint.receive_from("tool", timeout=10) == b"one"
        assert endpoint.receive(timeout=10) == ("tool", b"two")


def test_endpoint_errors(name):
    with shmbox.Endpoint.join(name, max_message_size=8) as endpoint:
        with pytest.raises(shmbox.AlreadyExists):
            shmbox.Endpoint.join(name)
        with pytest.raises(shmbox.NotFound, match=f"^endpoint '{name}-nobody': "):
            endpoint.send(name + "-nobody", b"hello")
        with pytest.raises(shmbox.TooLarge, match=f"^endpoint '{name}': "):
            endpoint.send(name, b"123456789")
        with pytest.raises(shmbox.WouldBlock):
            endpoint.receive(timeout=0)
        with pytest.raises(shmbox.Timeout, match=f"^endpoint '{name}': "):
            endpoint.receive_from("someone", timeout=0.05)
        with pytest.raises(shmbox.InUse):
            shmbox.Endpoint.remove(name)
    with pytest.raises(shmbox.Closed) as left:
        endpoint.receive(timeout=0)
    assert str(left.value) == f"endpoint '{name}': this handle left the endpoint"
    with pytest.raises(shmbox.InvalidArgument, match="^buffering 'some': is not one of bounded, zero, unbounded$"):
        shmbox.Endpoint.join(name, buffering="some")


def test_a_selector_serves_mailboxes_subscribers_and_endpoints(name, spawn):
    box = shmbox.Mailbox.create(name + "-box")
    topic = shmbox.Topic.create(name + "-topic")
    subscriber = topic.subscribe()
    with shmbox.Endpoint.join(name + "-me") as endpoint, shmbox.Selector() as selector:
        for handle in (box, subscriber, endpoint):
            selector.add(handle)
        assert len(selector) == 3
        with pytest.raises(shmbox.WouldBlock, match="^selector: "):
            selector.wait(timeout=0)
        sender = spawn("""
            import sys, time, shmbox
            name = sys.argv[1]
            shmbox.Mailbox.open(name + "-box").send(b"box")
            time.sleep(0.05)
            shmbox.Topic.open(name + "-topic").publisher().publish(b"topic")
            time.sleep(0.05)
            with shmbox.Endpoint.join(name + "-peer") as me:
                me.send(name + "-me", b"endpoint")
        """, name)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            ready = selector.wait(timeout=30)
            if ready is box:
                got.append(box.receive(timeout=0))
            elif ready is subscriber:
                got.append(subscriber.receive(timeout=0).data)
            elif ready is endpoint:
                got.append(endpoint.receive(timeout=0)[1])
        assert sorted(got) == [b"box", b"endpoint", b"topic"]
        _, err = sender.communicate(timeout=60)
        assert sender.returncode == 0, err
        # Watched handles stay until the selector lets go of them.
        with pytest.raises(shmbox.InvalidArgument) as watched:
            box.detach()
        assert str(watched.value) == (f"mailbox '{name}-box': a selector watches this handle: "
                                      "close the selector first")
    box.detach()  # the selector was closed
    with shmbox.Selector() as selector:
        with pytest.raises(shmbox.InvalidArgument, match="^selector: watches Mailbox, Subscriber and Endpoint"):
            selector.add(topic)
        with pytest.raises(shmbox.InvalidArgument, match="is watched for messages to receive only$"):
            selector.add(subscriber, "send")
        with pytest.raises(shmbox.InvalidArgument, match="^selector: "):
            selector.wait(timeout=0)  # nothing watched
    shmbox.Mailbox.remove(name + "-box")
    shmbox.Topic.remove(name + "-topic")
