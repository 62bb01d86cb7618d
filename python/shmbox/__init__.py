"""shmbox: shared memory and message passing between processes, from Python.

The same mailboxes, endpoints, segments, topics, boards, locks, services and pools as the C++
library,
shared with C++ processes by name::

    import shmbox
    with shmbox.Mailbox.create("orders", capacity=128) as box:
        box.send(b"hello")
    # in another process
    box = shmbox.Mailbox.open("orders")
    message = box.receive(timeout=1.0)   # bytes; shmbox.Timeout after a second

Every error is a shmbox.Error, of the class for its cause (shmbox.errors).
"""

from . import errors
from ._shmbox import (Board, BoardValue, Call, Client, Delivered, Endpoint, HeldLock, Lock, Mailbox, Publisher,
                      ReceivedMessage, Request, Segment, Selector, SendLoan, Server, Subscriber, Topic, TopicLoan,
                      TopicMessage)
from .errors import *  # noqa: F401,F403 (the exception classes, at the top level)
from .pool import Pool

__all__ = ["Board", "BoardValue", "Call", "Client", "Delivered", "Endpoint", "HeldLock", "Lock", "Mailbox", "Pool",
           "Publisher", "ReceivedMessage", "Request", "Segment", "Selector", "SendLoan", "Server", "Subscriber", "Topic",
           "TopicLoan", "TopicMessage", "errors"] + errors.__all__
