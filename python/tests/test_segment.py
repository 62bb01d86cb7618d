"""Segments: bytes written on one side are read on the other, C++ and Python alike."""

import numpy as np
import pytest

import shmbox


def test_python_writes_and_the_cpp_tool_reads(name, cli):
    with shmbox.Segment.create(name, 4096) as segment:
        assert (segment.name, segment.size, segment.writable) == (name, 4096, True)
        segment.memory[:5] = b"hello"
    assert cli("segment", "read", name).stdout[:5] == b"hello"


def test_the_cpp_tool_writes_and_numpy_sees_it_in_place(name, cli):
    segment = shmbox.Segment.create(name, 64)
    array = np.frombuffer(segment.memory, dtype=np.uint8)  # a view: no copy
    cli("segment", "write", name, "abc", "--offset", "8")
    assert bytes(array[8:11]) == b"abc"
    array[0] = 7  # numpy writes through to the shared memory
    assert cli("segment", "read", name).stdout[0] == 7


def test_a_read_only_handle_gives_a_read_only_view(name):
    shmbox.Segment.create(name, 16).memory[0] = 1
    reader = shmbox.Segment.open(name, writable=False)
    assert not reader.writable
    view = reader.memory
    assert view.readonly and view[0] == 1
    with pytest.raises(TypeError):
        view[0] = 2


def test_a_view_keeps_the_memory_after_its_handle_closes(name):
    segment = shmbox.Segment.create(name, 16)
    view = segment.memory
    segment.close()
    view[3] = 9  # still mapped: the view holds it
    assert view[3] == 9
    with pytest.raises(shmbox.Closed, match=f"^segment '{name}': this handle was closed$"):
        segment.memory


def test_errors(name):
    with pytest.raises(shmbox.NotFound, match=f"^segment '{name}'"):
        shmbox.Segment.open(name)
    shmbox.Segment.create(name, 16)
    with pytest.raises(shmbox.AlreadyExists, match=f"^segment '{name}'"):
        shmbox.Segment.create(name, 16)
    assert name in shmbox.Segment.list()
    shmbox.Segment.remove(name)
    with pytest.raises(shmbox.NotFound):
        shmbox.Segment.remove(name)
