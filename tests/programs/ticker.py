"""Works in a loop until interrupted; Ctrl-C pauses it."""

import sys
import time


def work(i):
    a = i * 2  # @work1
    b = a + 1  # @work2
    return b  # @work3


def main(limit):
    print("ready", flush=True)
    i = 0
    total = 0
    while i < limit:
        time.sleep(0.2)  # @sleep
        total += work(i)  # @call
        i += 1  # @incr
    print("finished", i, total, flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10**9)
