"""Ends in the way its argument says."""

import sys


def finish(how):
    if how == "code":
        sys.exit(3)
    if how == "message":
        sys.exit("fatal: the message goes to stderr")
    if how == "none":
        sys.exit()
    if how == "raise":
        raise RuntimeError("boom")
    if how == "keyboard":
        raise KeyboardInterrupt
    if how == "syntax":
        compile("def (", "<code>", "exec")
    print("normal end")


print("start", flush=True)
finish(sys.argv[1])
