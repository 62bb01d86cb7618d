"""Fixtures the tests share: unique names (removed afterwards) and the shmbox tool."""

import itertools
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import shmbox

_counter = itertools.count()


@pytest.fixture
def name(request):
    """A name no other test uses; whatever was made under it is removed afterwards."""
    made = f"py-{os.getpid()}-{next(_counter)}"
    yield made
    for remove in (shmbox.Mailbox.remove, shmbox.Segment.remove, shmbox.Topic.remove, shmbox.Board.remove,
                   shmbox.Lock.remove, shmbox.Server.remove):
        try:
            remove(made)
        except shmbox.Error:
            pass


@pytest.fixture
def cli():
    """Runs the shmbox tool (the C++ side of the interop tests): its CompletedProcess."""
    path = os.environ.get("SHMBOX_CLI") or shutil.which("shmbox")
    if path is None:
        pytest.fail("the shmbox tool is needed: set SHMBOX_CLI (ctest does)")

    # Under a sanitizer the interpreter runs with its runtime preloaded and leak checks off
    # (python/CMakeLists.txt); the tool is built with the runtime and checks its own leaks.
    environment = dict(os.environ)
    environment.pop("LD_PRELOAD", None)
    if "ASAN_OPTIONS" in environment:
        environment["ASAN_OPTIONS"] += ":detect_leaks=1"

    def run(*args, input=None, check=True):
        return subprocess.run([path, *args], input=input, capture_output=True, check=check, timeout=60,
                              env=environment)

    def start(*args):
        """The tool started, not waited for: its Popen, stdin, stdout and stderr piped."""
        return subprocess.Popen([path, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=environment)

    run.start = start
    return run


@pytest.fixture
def spawn():
    """Starts a Python process of its own running `code` (with shmbox importable) with
    `args`: its Popen, stdout and stderr piped."""
    started = []

    def start(code, *args):
        process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(process)
        return process

    yield start
    for process in started:  # a test that failed may leave one waiting
        if process.poll() is None:
            process.kill()
            process.wait()
