"""Sleeps, or reads a line; Ctrl-C pauses it and `continue` resumes the call."""

import sys
import time

start = time.monotonic()
print("waiting", flush=True)
if sys.argv[1:] == ["input"]:
    line = input("name? ")  # @input
    print("hello", line, flush=True)
elif sys.argv[1:] == ["read"]:
    line = sys.stdin.readline()  # @read
    print("got", repr(line.strip()), flush=True)
else:
    time.sleep(2.0)  # @sleep
    print(f"slept {time.monotonic() - start:.1f}", flush=True)
