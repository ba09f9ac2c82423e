"""contextlib.suppress, and a `return` in `finally` that swallows the exception."""

import contextlib


def finally_return():
    try:
        1 / 0  # noqa: B018
    finally:
        return "returned from finally"  # noqa: B012


with contextlib.suppress(KeyError):
    {}["x"]
    print("not reached")
print("after suppress")

with contextlib.suppress(ZeroDivisionError, ValueError):
    int("bad")
print("after suppress of a tuple")

print(finally_return())
