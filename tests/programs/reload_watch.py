"""A long loop, edited while it runs (`--watch`): the function it calls and
its own body."""

import sys
import time


def work(i):
    return i * 2  # @work


def main(limit):
    for i in range(limit):
        value = work(i)
        label = "step"  # @label
        print(label, i, value, flush=True)
        time.sleep(0.05)
    print("finished", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
