"""Calls a helper module (instrumented by default) and the stdlib (never)."""

import json

import helpermod

print("converted", helpermod.convert(["1", "x", "3"]))
data = json.loads("{broken")  # @stdlib
print("after json", data if "data" in dir() else "no data")
