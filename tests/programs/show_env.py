"""Prints what the program sees of how it was started."""

import sys

print("argv", sys.argv)
print("path0", repr(sys.path[0]))
print("name", __name__)
print("file", globals().get("__file__"))
print("cached", globals().get("__cached__", "-"))
print("package", __package__)
print("spec", None if __spec__ is None else (__spec__.name, __spec__.origin))
print("loader", isinstance(__loader__, type), getattr(__loader__, "name", None))
print("builtins", type(__builtins__).__name__)
print("doc", __doc__)
print("main", sys.modules["__main__"].__dict__ is globals())
print("globals", list(globals())[:9])
