"""A long loop that calls a function each iteration (edited while it runs)."""

import sys
import time


def work(i):
    return i * 2  # @work


def main(limit):
    for i in range(limit):
        print("step", i, work(i), flush=True)
        time.sleep(0.05)
    print("finished", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
