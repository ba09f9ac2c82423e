"""Fails while a frame holds something a checkpoint cannot hold.

usage: ckpt_unsaveable.py KIND
"""

import sys
import threading


def fail():
    return 1 / 0


def numbers():
    yield from range(3)


def job(kind):
    if kind == "generator":
        gen = (i for i in range(3))
        next(gen)
    elif kind == "lock":
        lock = threading.Lock()
        lock.acquire()
    elif kind == "socket":
        import socket

        holder = {"name": "x", "conn": socket.socket()}  # noqa: F841 (alive at the failure)
    elif kind == "thread":
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait, name="worker", daemon=True)
        worker.start()
    elif kind == "for-generator":
        for _n in numbers():
            fail()
    elif kind == "file-iter":
        with open(__file__) as f:
            for _line in f:
                fail()
    fail()


job(sys.argv[1])
