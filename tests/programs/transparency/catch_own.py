"""Raises and catches its own exceptions in many ways."""

import sys


class AppError(Exception):
    pass


def parse(text):
    return int(text)


def level3(x):
    return 10 // x


def level2(x):
    return level3(x)


def level1(x):
    try:
        return level2(x)
    except ZeroDivisionError as e:
        return f"caught two frames down: {e}"


def reraise():
    try:
        parse("x")
    except ValueError as e:
        raise AppError("wrapped") from e


def main():
    try:
        parse("nope")
    except ValueError as e:
        print("same frame:", e)
    print(level1(0))
    try:
        reraise()
    except AppError as e:
        print("chained:", e, "<-", repr(e.__cause__))
    try:
        {}["missing"]
    except (KeyError, IndexError) as e:
        print("tuple clause:", repr(e))
    try:
        [].pop()
    except Exception as e:
        print("catch-all in user code:", e)
    try:
        try:
            1 / 0  # noqa: B018
        finally:
            print("inner finally")
    except ZeroDivisionError:
        print("outer except after finally")
    print("hasattr:", hasattr(object(), "nope"), getattr(object(), "nope", "default"))
    print("next default:", next(iter([]), "empty"))
    print("dict.get:", {}.get("k", 0))
    try:
        raise ExceptionGroup("group", [ValueError("a"), TypeError("b")])
    except* ValueError as eg:
        print("except* value:", eg.exceptions)
    except* TypeError as eg:
        print("except* type:", eg.exceptions)
    while True:
        try:
            int("loop")
        except ValueError:
            break
        finally:
            print("loop finally")
    for i in range(3):
        try:
            if i == 1:
                raise AppError(i)
        except AppError:
            continue
        print("iteration", i)
    try:
        sys.exit(5)
    except SystemExit as e:
        print("caught SystemExit", e.code)
    print("end")


main()
