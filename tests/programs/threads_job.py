"""A worker thread fails on one item while the main thread keeps counting."""

import threading
import time

ticks = 0
stop = threading.Event()
results = []


def handle(item):
    return 100 // item  # @fail


def worker(items):
    for item in items:
        results.append(handle(item))  # @call


def main():
    global ticks
    t = threading.Thread(target=worker, args=([5, 0, 20],), name="worker-1")
    t.start()
    while t.is_alive():
        ticks += 1
        time.sleep(0.01)
    t.join()
    print("results", results, flush=True)
    print("main ticked", ticks > 0, flush=True)


if __name__ == "__main__":
    main()
