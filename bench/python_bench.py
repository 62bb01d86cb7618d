"""Python to Python through shmbox, against what Python offers: multiprocessing.Queue,
multiprocessing.Pipe and a socketpair. 64-byte messages between two processes: the round
trip (median and p99 of single round trips, in microseconds) and a one-way stream
(messages per second). Each figure is the median of --repeat runs, the transports
interleaved within each repetition, and the ratio to multiprocessing.Queue is taken in the
same repetition.

    PYTHONPATH=build/release/python python3 bench/python_bench.py [--repeat 5] [--quick]
"""

import argparse
import multiprocessing
import os
import socket
import statistics
import struct
import time

import shmbox

SIZE = 64


class ShmboxLink:
    """Ping on one mailbox, pong on another."""

    name = "shmbox mailbox"

    def __init__(self):
        self.tag = f"pybench-{os.getpid()}-{time.monotonic_ns()}"
        self.boxes = [shmbox.Mailbox.create(f"{self.tag}-{side}", capacity=1024, max_message_size=SIZE,
                                            ownership="system") for side in ("ping", "pong")]

    def ends(self):
        return (f"{self.tag}-ping", f"{self.tag}-pong"), (f"{self.tag}-pong", f"{self.tag}-ping")

    @staticmethod
    def open(end):
        inbox, outbox = (shmbox.Mailbox.open(name) for name in end)
        return outbox.send, inbox.receive

    def close(self):
        for box in self.boxes:
            shmbox.Mailbox.remove(box.name)


class QueueLink:
    name = "multiprocessing.Queue"

    def __init__(self):
        self.queues = multiprocessing.Queue(), multiprocessing.Queue()

    def ends(self):
        return self.queues, self.queues[::-1]

    @staticmethod
    def open(end):
        inbox, outbox = end
        return outbox.put, inbox.get

    def close(self):
        pass


class PipeLink:
    name = "multiprocessing.Pipe"

    def __init__(self):
        self.pair = multiprocessing.Pipe()

    def ends(self):
        return self.pair[0], self.pair[1]

    @staticmethod
    def open(end):
        return end.send_bytes, end.recv_bytes

    def close(self):
        pass


class SocketLink:
    """A Unix socketpair, each message a fixed 64 bytes."""

    name = "socketpair"

    def __init__(self):
        self.pair = socket.socketpair()

    def ends(self):
        return self.pair[0], self.pair[1]

    @staticmethod
    def open(end):
        def receive():
            message = b""
            while len(message) < SIZE:
                message += end.recv(SIZE - len(message))
            return message

        return end.sendall, receive

    def close(self):
        pass


def echo(link_type, end, count):
    send, receive = link_type.open(end)
    for _ in range(count):
        send(receive())


def sink(link_type, end, count, done):
    _, receive = link_type.open(end)
    for n in range(count):
        message = receive()
        if struct.unpack_from("Q", message)[0] != n:
            raise SystemExit(f"message {n} out of order")
    done.value = time.perf_counter()


def round_trip(link_type, count):
    link = link_type()
    mine, theirs = link.ends()
    peer = multiprocessing.Process(target=echo, args=(link_type, theirs, count))
    peer.start()
    send, receive = link_type.open(mine)
    message = bytes(SIZE)
    samples = []
    for _ in range(count):
        started = time.perf_counter_ns()
        send(message)
        receive()
        samples.append((time.perf_counter_ns() - started) / 1000)
    peer.join()
    link.close()
    samples = sorted(samples[count // 10:])  # after a warm-up
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def stream(link_type, count):
    link = link_type()
    mine, theirs = link.ends()
    done = multiprocessing.Value("d", 0.0)
    peer = multiprocessing.Process(target=sink, args=(link_type, theirs, count, done))
    peer.start()
    send, _ = link_type.open(mine)
    message = bytearray(SIZE)
    started = time.perf_counter()
    for n in range(count):
        struct.pack_into("Q", message, 0, n)
        send(bytes(message))
    peer.join()
    if peer.exitcode != 0:
        raise SystemExit(f"{link_type.name}: the receiver failed")
    link.close()
    return count / (done.value - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    args = parser.parse_args()
    multiprocessing.set_start_method("fork")
    trips, messages = (2_000, 20_000) if args.quick else (20_000, 200_000)
    links = [ShmboxLink, QueueLink, PipeLink, SocketLink]
    results = {link.name: {"median": [], "p99": [], "rate": [], "trip_ratio": [], "rate_ratio": []} for link in links}
    for _ in range(args.repeat):
        this_run = {}
        for link in links:
            median, p99 = round_trip(link, trips)
            this_run[link.name] = (median, p99, stream(link, messages))
        base = this_run[QueueLink.name]
        for link in links:
            median, p99, rate = this_run[link.name]
            figures = results[link.name]
            figures["median"].append(median)
            figures["p99"].append(p99)
            figures["rate"].append(rate)
            figures["trip_ratio"].append(base[0] / median)
            figures["rate_ratio"].append(rate / base[2])
    print(f"64 B between two Python processes, median of {args.repeat} runs (ratios: to multiprocessing.Queue "
          "in the same run)\n")
    print("| transport | round trip us: median [p99] | Queue's round trip / this | stream messages/s | / Queue's |")
    print("| --- | --- | --- | --- | --- |")
    for link in links:
        figures = {key: statistics.median(values) for key, values in results[link.name].items()}
        print(f"| {link.name} | {figures['median']:.1f} [{figures['p99']:.1f}] | {figures['trip_ratio']:.1f}x | "
              f"{figures['rate'] / 1e6:.2f}M | {figures['rate_ratio']:.1f}x |")


if __name__ == "__main__":
    main()
