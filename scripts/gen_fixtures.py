"""Dump real code objects for the bytecode crate's `cargo test` fixtures.

Each line of `crates/bytecode/tests/fixtures/code-3XX.txt` is one code object:
`firstlineno nargs co_code co_exceptiontable co_linetable` (bytes in hex, `-`
for empty). The modules are chosen for variety: loops, `with`, `try`,
generators, coroutines, comprehensions, `match`, `except*`.

Usage: python3.X scripts/gen_fixtures.py  (once per supported interpreter)
"""

import sys
import types
from pathlib import Path

MODULES = [
    "json.decoder",
    "contextlib",
    "argparse",
    "asyncio.tasks",
    "dataclasses",
    "textwrap",
    "fractions",
]

SAMPLE = """
def loops(xs):
    total = 0
    for x in xs:
        for y in range(x):
            if y % 2:
                continue
            total += y
    while total > 10:
        total -= 3
    return total

def handlers(path):
    try:
        with open(path) as f:
            data = f.read()
    except (OSError, ValueError) as e:
        data = str(e)
    else:
        data = data.strip()
    finally:
        print("done")
    return data

def star():
    try:
        raise ExceptionGroup("g", [TypeError()])
    except* TypeError:
        pass

def matcher(cmd):
    match cmd:
        case ["go", direction]:
            return direction
        case {"x": x, **rest}:
            return x
        case _:
            return None

async def coro(it):
    async with it as a:
        async for b in a:
            await b
    return [x async for x in it]

def gen(n):
    yield from range(n)
    x = yield
    return [y * x for y in range(n) if y]
"""


def walk(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from walk(c)


def nargs(c):
    return c.co_argcount + c.co_kwonlyargcount + bool(c.co_flags & 4) + bool(c.co_flags & 8)


def main():
    codes = list(walk(compile(SAMPLE, "<sample>", "exec")))
    for name in MODULES:
        mod = __import__(name, fromlist=["_"])
        src = Path(mod.__file__).read_text()
        codes.extend(walk(compile(src, mod.__file__, "exec")))
    v = f"{sys.version_info[0]}{sys.version_info[1]}"
    out = Path(__file__).resolve().parent.parent / f"crates/bytecode/tests/fixtures/code-{v}.txt"
    with out.open("w") as f:
        for c in codes:
            parts = [c.co_code.hex(), c.co_exceptiontable.hex() or "-", c.co_linetable.hex() or "-"]
            f.write(f"{c.co_firstlineno} {nargs(c)} {' '.join(parts)}\n")
    print(f"wrote {len(codes)} code objects to {out}")


if __name__ == "__main__":
    main()
