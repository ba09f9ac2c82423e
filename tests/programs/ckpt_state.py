"""State a checkpoint must bring back exactly: one list shared by two frames
and an instance of a ``__main__`` dataclass, a closure whose cell is rebound
after the checkpoint, an ``except`` body, ``enumerate(zip(...))`` over dict
iterators, an open file in a ``with`` block, numpy arrays and a view of one.

The first run fails in ``bonus`` (three calls deep, inside the ``except``)
until FLAG exists; resuming after creating it must print what a run with
FLAG present from the start prints.

usage: ckpt_state.py FLAG OUT
"""

import dataclasses
import sys

try:
    import numpy
except ImportError:
    numpy = None

FLAG, OUT = sys.argv[1], sys.argv[2]
SEEN = set()


@dataclasses.dataclass
class Acc:
    items: list
    count: int = 0

    def add(self, x):
        self.items.append(x)
        self.count += 1


def bonus(x):
    if x == 3:
        with open(FLAG) as f:  # fails until FLAG exists
            return int(f.read())
    return 0


def inner(shared, acc, x, out):
    try:
        raise KeyError(x)
    except KeyError as e:
        y = x + bonus(x)
        shared.append(("inner", y, e.args, sys.exc_info()[0].__name__))
    acc.add(y)
    SEEN.add(y)
    out.write(f"{y}\n")


def middle(shared, acc, data, out, arrays):
    scale = 10

    def scaled(v):
        return v * scale

    for i, (k, v) in enumerate(zip(data, data.values())):  # noqa: B905
        inner(shared, acc, v, out)
        shared.append((i, k, scaled(v)))
        if arrays is not None:
            arrays["a"][i] += v
    scale = 100
    shared.append(scaled(1))
    return shared


def main():
    shared = []
    acc = Acc(items=shared)
    data = {"a": 1, "b": 2, "c": 3, "d": 4}
    arrays = None
    if numpy is not None:
        a = numpy.arange(300_000, dtype=numpy.float64)
        arrays = {"a": a, "every_third": a[::3], "same": a}
    with open(OUT, "w") as out:
        res = middle(shared, acc, data, out, arrays)
    print(res)
    print(acc.items is shared, acc.count, type(acc).__name__, sorted(SEEN))
    with open(OUT) as f:
        print(f.read().split())
    if arrays is not None:
        arrays["a"][3] = -1.0
        print(arrays["every_third"][1], arrays["same"] is arrays["a"], float(arrays["a"][:6].sum()))
    print(sys.exc_info())


main()
