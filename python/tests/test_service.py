"""Request/response from Python: servers and clients across processes and with the C++
tool, streams, failures, and a server killed holding a request losing nothing."""

import os
import signal

import pytest

import shmbox

UPPER_SERVER = """
    import sys, shmbox
    for request in shmbox.Server.join(sys.argv[1]):
        request.answer(request.data.upper())
"""


def test_a_python_client_and_a_python_server(name, spawn):
    server = spawn(UPPER_SERVER, name)
    try:
        shmbox.Server.join(name).name  # the service exists from here (the spawned server may come later)
        client = shmbox.Client.connect(name)
        assert client.call(b"hello", timeout=30) == b"HELLO"
        calls = [client.send(str(n).encode() + b"x", timeout=30) for n in range(5)]
        assert [call.answer(timeout=30) for call in calls] == [str(n).encode() + b"X" for n in range(5)]
    finally:
        shmbox.Server.remove(name)  # its servers see Closed and end
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err


def test_the_cpp_tool_serves_python_and_python_serves_the_tool(name, cli):
    tool_server = cli.start("serve", "--workers", "1", name, "--", "tr", "a-z", "A-Z")
    try:
        shmbox.Server.join(name)  # makes the service now, so that connect cannot come first
        assert shmbox.Client.connect(name).call(b"from python", timeout=30) == b"FROM PYTHON"
    finally:
        tool_server.send_signal(signal.SIGTERM)
        tool_server.communicate(timeout=60)
    shmbox.Server.remove(name)

    server = shmbox.Server.join(name)
    caller = cli.start("call", name, "from c++")
    with server.next(timeout=30) as request:
        assert request.data == b"from c++" and request.takes == 1 and request.client_pid == caller.pid
        request.answer(request.data[::-1])
    out, err = caller.communicate(timeout=60)
    assert caller.returncode == 0, err
    assert out == b"++c morf"


def test_a_stream_of_answers_and_a_failure(name, spawn):
    server = shmbox.Server.join(name)
    client = shmbox.Client.connect(name)
    call = client.send(b"count", timeout=30)
    with server.next(timeout=30) as request:
        for n in range(3):
            request.answer_part(str(n).encode())
        request.end()
    assert list(call) == [b"0", b"1", b"2"] and call.ended

    call = client.send(b"polled", timeout=30)
    request = server.next(timeout=30)
    request.answer_part(b"a")
    with pytest.raises(shmbox.WouldBlock):
        call.answer(timeout=0)  # what came so far is kept for the next ask
    request.answer_part(b"b")
    request.end()
    assert call.answer(timeout=30) == b"ab"

    call = client.send(b"bad", timeout=30)
    with pytest.raises(ZeroDivisionError):
        with server.next(timeout=30):
            1 / 0  # the block's exception fails the call with its text
    with pytest.raises(shmbox.TaskFailed, match="division by zero"):
        call.answer(timeout=30)

    call = client.send(b"dropped", timeout=30)
    with server.next(timeout=30):
        pass  # ends unanswered
    with pytest.raises(shmbox.TaskFailed, match="dropped it unanswered"):
        call.answer(timeout=30)


def test_a_server_killed_holding_a_request_loses_nothing(name, spawn):
    shmbox.Server.join(name)
    doomed = spawn("""
        import sys, time, shmbox
        request = shmbox.Server.join(sys.argv[1]).next()
        print("holding", flush=True)
        time.sleep(60)
    """, name)
    client = shmbox.Client.connect(name)
    call = client.send(b"precious", timeout=60)
    assert doomed.stdout.readline() == b"holding\n"
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=30)
    with shmbox.Server.open(name).next(timeout=30) as request:
        assert request.data == b"precious" and request.takes == 2
        request.answer(b"done")
    assert call.answer(timeout=30) == b"done"


def test_errors(name):
    with pytest.raises(shmbox.NotFound, match=f"^service '{name}': "):
        shmbox.Client.connect(name)
    with pytest.raises(shmbox.NotFound, match=f"^service '{name}': "):
        shmbox.Server.open(name)
    server = shmbox.Server.join(name, max_request_size=8)
    client = shmbox.Client.connect(name)
    with pytest.raises(shmbox.TooLarge) as too_large:
        client.call(b"123456789")
    assert str(too_large.value) == f"service '{name}': a request of 9 bytes is over its maximum of 8"
    with pytest.raises(shmbox.WouldBlock):
        server.next(timeout=0)
    call = client.send(b"late", timeout=0.2)
    with pytest.raises(shmbox.Timeout, match=f"^service '{name}': "):
        call.answer()  # the call's own deadline ends the wait
    with pytest.raises(shmbox.Timeout):
        server.next(timeout=0.2)  # its deadline passed: dropped on the way, never taken up
    call = client.send(b"on time", timeout=30)
    with server.next(timeout=30) as request:
        request.answer(b"x")
        with pytest.raises(shmbox.InvalidArgument) as answered:
            request.answer(b"again")
        assert str(answered.value) == f"service '{name}': this request was answered already"
    assert call.answer(timeout=30) == b"x"

    small = shmbox.Client.connect(name, max_answer_size=4)
    call = small.send(b"big", timeout=30)
    with server.next(timeout=30) as request:
        with pytest.raises(shmbox.TooLarge) as too_large:
            request.answer_part(b"123456789")
        assert str(too_large.value).endswith(": a part of 9 bytes is over the client's maximum of 4")
        with pytest.raises(shmbox.InvalidArgument):
            request.data  # the refused part ended the request: its bytes are no longer ours
    with pytest.raises(shmbox.TaskFailed, match="a part of 9 bytes is over the client's maximum of 4$"):
        call.answer(timeout=30)
