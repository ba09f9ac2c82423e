"""A job with a few megabytes of state that takes periodic checkpoints (for
``kill -9`` while they are written): writes one line per step to OUT.

usage: ckpt_every.py OUT [STEPS]
"""

import sys
import time

STATE = {"blob": bytearray(6 << 20), "rows": []}


def step(i, state):
    blob = state["blob"]
    blob[(i * 7919) % len(blob)] = i % 251
    v = sum(blob[(i * 7919 + j) % len(blob)] for j in range(0, 64 * 97, 97)) + i
    state["rows"].append(v)
    return v


def main(out_path, steps):
    with open(out_path, "w") as out:
        for i in range(steps):
            v = step(i, STATE)
            out.write(f"{i} {v}\n")
            time.sleep(0.003)
    print("done", len(STATE["rows"]), sum(STATE["rows"]))


STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
main(sys.argv[1], STEPS)
