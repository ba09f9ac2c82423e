"""Workloads for ``run_all.py``: loops in which half of the iterations raise a
``KeyError`` that the program's own ``except`` catches.

``run_all.py`` compiles this file twice, plain and instrumented, and times each
function in both. Every function takes ``(n, table)``: ``n`` iterations over a
table holding the even keys only, so every odd key raises. Each returns a
checksum, compared between the two variants.
"""


def same_frame(n, table):
    """The ``raise`` (a failed subscript) and the ``except`` in one frame."""
    total = 0
    for i in range(n):
        try:
            total += table[i]
        except KeyError:
            total -= 1
    return total


def _lookup(table, key):
    return table[key]


def in_callee(n, table):
    """The ``KeyError`` raised one call down, caught here."""
    total = 0
    for i in range(n):
        try:
            total += _lookup(table, i)
        except KeyError:
            total -= 1
    return total


def _level3(table, key):
    value = table[key]
    return value


def _level2(table, key):
    value = _level3(table, key)
    return value


def _level1(table, key):
    value = _level2(table, key)
    return value


def three_calls_down(n, table):
    """The ``KeyError`` raised three calls down, passing two frames with no handler."""
    total = 0
    for i in range(n):
        try:
            total += _level1(table, i)
        except KeyError:
            total -= 1
    return total


def explicit_raise(n, table):
    """An explicit ``raise KeyError(...)`` in a called function, caught by an
    ``except (KeyError, IndexError) as e`` clause that uses the exception."""
    total = 0
    for i in range(n):
        try:
            total += _get_or_raise(table, i)
        except (KeyError, IndexError) as e:
            total -= len(e.args)
    return total


def _get_or_raise(table, key):
    if key not in table:
        raise KeyError(key)
    return table[key]


def inside_with_and_for(n, table):
    """The ``except`` around a ``with`` block inside nested loops: the stub
    sees an iterator and a bound ``__exit__`` below the failing statement."""
    total = 0
    guard = _Guard()
    for i in range(n // 10):
        for j in range(10):
            try:
                with guard:
                    total += table[i * 10 + j]
            except KeyError:
                total -= 1
    return total


class _Guard:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


#: name: (function, description) in the order printed.
WORKLOADS = {
    "same frame": (same_frame, "raise and except in one frame"),
    "in callee": (in_callee, "raised one call down"),
    "3 calls down": (three_calls_down, "raised three calls down"),
    "explicit raise": (explicit_raise, "raise KeyError(k) in a callee, except (A, B) as e"),
    "in with+for": (inside_with_and_for, "except around a with, in nested for loops"),
}
