"""Every cause the library reports is its own exception class, with the message intact."""

import os

import pytest

import shmbox
from shmbox import _shmbox

CAUSES = {
    "invalid_name": (shmbox.InvalidName, ValueError),
    "invalid_argument": (shmbox.InvalidArgument, ValueError),
    "not_found": (shmbox.NotFound, FileNotFoundError),
    "already_exists": (shmbox.AlreadyExists, FileExistsError),
    "permission_denied": (shmbox.PermissionDenied, PermissionError),
    "no_space": (shmbox.NoSpace, shmbox.Error),
    "too_large": (shmbox.TooLarge, ValueError),
    "not_ready": (shmbox.NotReady, shmbox.Error),
    "would_block": (shmbox.WouldBlock, BlockingIOError),
    "timeout": (shmbox.Timeout, TimeoutError),
    "closed": (shmbox.Closed, shmbox.Error),
    "corrupt": (shmbox.Corrupt, shmbox.Error),
    "version_mismatch": (shmbox.VersionMismatch, shmbox.Error),
    "out_of_memory": (shmbox.OutOfMemory, MemoryError),
    "system": (shmbox.SystemFailure, OSError),
    "unreachable": (shmbox.Unreachable, ConnectionError),
    "in_use": (shmbox.InUse, shmbox.Error),
    "not_recoverable": (shmbox.NotRecoverable, shmbox.Error),
    "conflict": (shmbox.Conflict, shmbox.Error),
    "task_failed": (shmbox.TaskFailed, shmbox.Error),
}


@pytest.mark.parametrize("cause", sorted(CAUSES))
def test_each_cause_is_its_own_class_and_keeps_the_message(cause):
    kind, builtin = CAUSES[cause]
    with pytest.raises(kind) as raised:
        _shmbox._raise_for_test(cause, "mailbox 'orders'", "went wrong")
    error = raised.value
    assert isinstance(error, shmbox.Error) and isinstance(error, builtin)
    assert str(error) == "mailbox 'orders': went wrong"
    assert (error.object, error.detail) == ("mailbox 'orders'", "went wrong")


def test_every_cause_of_the_library_has_a_class():
    assert set(shmbox.errors.by_cause) == set(CAUSES)


def test_real_errors_name_the_object_and_the_cause(name):
    with pytest.raises(shmbox.NotFound, match=f"^mailbox '{name}': cannot open: does not exist"):
        shmbox.Mailbox.open(name)
    with pytest.raises(shmbox.InvalidName, match="^mailbox 'a/b': name must be one path component"):
        shmbox.Mailbox.create("a/b")
    with pytest.raises(shmbox.InvalidArgument, match="^buffering 'lots': is not one of bounded, zero, unbounded$"):
        shmbox.Mailbox.create(name, buffering="lots")
    box = shmbox.Mailbox.create(name, max_message_size=8)
    with pytest.raises(shmbox.AlreadyExists, match=f"^mailbox '{name}'"):
        shmbox.Mailbox.create(name)
    with pytest.raises(shmbox.TooLarge, match=f"^mailbox '{name}': message of 9 bytes is over the mailbox's maximum of 8$"):
        box.send(b"x" * 9)
    with pytest.raises(shmbox.InvalidArgument, match=f"^segment '{name}': size must be at least 1 byte$"):
        shmbox.Segment.create(name, 0)
    with pytest.raises(shmbox.InvalidArgument, match="^timeout: must be a number of seconds, not NaN$"):
        box.receive(timeout=float("nan"))
    with pytest.raises(shmbox.InvalidArgument, match=f"^mailbox '{name}': a message must be bytes in one contiguous run"):
        box.send(memoryview(b"abcdef")[::2])  # strided: its pointer and length are not its bytes


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to become another user (CI runs as root)")
def test_permission_denied_names_the_mailbox(name):
    shmbox.Mailbox.create(name, mode=0o600, ownership="system")
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)  # nobody: not the owner, and no capability to pass the mode
            shmbox.Mailbox.open(name)
        except shmbox.PermissionDenied as error:
            code = 0 if str(error).startswith(f"mailbox '{name}'") else 2
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
