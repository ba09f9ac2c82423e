"""A batch job three calls deep: ``main`` -> ``run_batches`` ->
``process_batch`` -> ``score``; loops over generated records, writes one
line per record to OUT (a file open in a ``with`` block) and one line per
batch to stdout.

usage: ckpt_job.py OUT [N_BATCHES] [WORK]
"""

import sys

WEIGHTS = {"a": 3, "b": -2, "c": 5}


def make_batch(b, size=20):
    return [
        {"id": b * size + i, "a": (b * 7 + i) % 13, "b": i % 5, "c": (b + i) % 3}
        for i in range(size)
    ]


def score(record, weights, work):
    total = 0
    for key, w in weights.items():
        total += record[key] * w
    for k in range(work):  # busy work, so that signals land anywhere
        total = (total * 31 + k) % 1000003
    return total


def process_batch(batch, weights, out, work):
    results = []
    for record in batch:
        s = score(record, weights, work)
        results.append(s)
        out.write(f"{record['id']},{s}\n")
    return sum(results)


def run_batches(n, out, work):
    grand = 0
    for b in range(n):
        batch = make_batch(b)
        grand += process_batch(batch, WEIGHTS, out, work)
        print(f"batch {b}: {grand}", flush=True)
    return grand


def main(argv):
    out_path = argv[1]
    n = int(argv[2]) if len(argv) > 2 else 30
    work = int(argv[3]) if len(argv) > 3 else 2000
    with open(out_path, "w") as out:
        grand = run_batches(n, out, work)
    print(f"total {grand}")


main(sys.argv)
