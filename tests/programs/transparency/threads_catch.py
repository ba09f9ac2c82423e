"""Threads that handle their own errors."""

import queue
import threading

results = queue.Queue()


def worker(n):
    try:
        results.put(10 // n)
    except ZeroDivisionError:
        results.put("div by zero handled")


threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 0, 5)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sorted(str(results.get()) for _ in threads))
