"""A job that fails on a bug in its third frame: item 7 makes ``convert``
divide by zero. Each unit of work appends ``work N`` to LOG, so redone work
shows; the results go to OUT.

usage: ckpt_crash.py LOG OUT
"""

import sys


def convert(value):
    return 100 // value  # @bug


def work_on(item, log):
    log.write(f"work {item}\n")
    log.flush()
    return convert(item % 7)


def run(items, log):
    results = []
    for item in items:
        results.append(work_on(item, log))
    return results


with open(sys.argv[1], "a") as log:
    res = run(list(range(1, 15)), log)
with open(sys.argv[2], "w") as f:
    f.write(repr(res) + "\n")
print("sum", sum(res))
