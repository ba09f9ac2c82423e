"""Calls resurrect.pause() in the middle of a computation."""

from resurrect.prompt import pause


def compute(x):
    y = x * 2
    pause()  # @pause
    z = y + 1  # @after
    return z


print("result", compute(20))
