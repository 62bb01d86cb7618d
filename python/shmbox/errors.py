"""shmbox's exceptions: one base, shmbox.Error, and a class per cause.

Each keeps the library's one-line message, which names the object and the cause
("mailbox 'orders': is full"), and has it apart too: ``error.object`` ("mailbox 'orders'")
and ``error.detail`` ("is full"). Where Python has a built-in exception for the same cause,
the class derives from it too, so ``except TimeoutError`` or ``except FileNotFoundError``
catch shmbox's as well.
"""


class Error(Exception):
    """A shmbox call failed; ``object`` names what it acted on, ``detail`` the cause."""

    def __init__(self, message: str, object: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.object = object
        self.detail = detail


class InvalidName(Error, ValueError):
    """A name breaks the naming rules."""


class InvalidArgument(Error, ValueError):
    """A size, mode or option is out of range, or a handle is used wrongly."""


class NotFound(Error, FileNotFoundError):
    """No object has that name."""


class AlreadyExists(Error, FileExistsError):
    """An exclusive create found the name taken."""


class PermissionDenied(Error, PermissionError):
    """The object's mode, or the access asked for, forbids it."""


class NoSpace(Error):
    """/dev/shm (or the address space) cannot hold the size asked for."""


class TooLarge(Error, ValueError):
    """A size is beyond what the object or the system allows."""


class NotReady(Error):
    """The object exists but its creator has not finished it."""


class WouldBlock(Error, BlockingIOError):
    """A call with timeout=0 could not complete at once."""


class Timeout(Error, TimeoutError):
    """A timed call ran out of time."""


class Closed(Error):
    """The object was closed or removed."""


class Corrupt(Error):
    """Shared memory failed validation (another process wrote over it); nothing was used."""


class VersionMismatch(Error):
    """The object has a layout version this build does not speak."""


class OutOfMemory(Error, MemoryError):
    """Memory ran out while the object grew."""


class SystemFailure(Error, OSError):
    """Any other system error."""


class Unreachable(Error, ConnectionError):
    """A remote server (nats://) could not be reached."""


class InUse(Error):
    """A live process holds the object; it goes when that process does."""


class NotRecoverable(Error):
    """A lock's holder died and the data it guarded was never repaired."""


class Conflict(Error):
    """A conditional write found that another writer got there first."""


class TaskFailed(Error):
    """A pool's task failed on each of its attempts."""


# The library's causes (shmbox::Errc), by name, as the extension reports them.
by_cause = {
    "invalid_name": InvalidName,
    "invalid_argument": InvalidArgument,
    "not_found": NotFound,
    "already_exists": AlreadyExists,
    "permission_denied": PermissionDenied,
    "no_space": NoSpace,
    "too_large": TooLarge,
    "not_ready": NotReady,
    "would_block": WouldBlock,
    "timeout": Timeout,
    "closed": Closed,
    "corrupt": Corrupt,
    "version_mismatch": VersionMismatch,
    "out_of_memory": OutOfMemory,
    "system": SystemFailure,
    "unreachable": Unreachable,
    "in_use": InUse,
    "not_recoverable": NotRecoverable,
    "conflict": Conflict,
    "task_failed": TaskFailed,
}

__all__ = ["Error", "by_cause"] + [cls.__name__ for cls in by_cause.values()]
