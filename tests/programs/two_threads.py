"""Two threads fail at about the same time: one prompt at a time."""

import threading

results = {}
ready = threading.Barrier(2)


def work(name):
    ready.wait()
    value = 1 // 0  # @fail
    results[name] = value


threads = [threading.Thread(target=work, args=(n,), name=n) for n in ("alpha", "beta")]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("results", sorted(results.items()))
