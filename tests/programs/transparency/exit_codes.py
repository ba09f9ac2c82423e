"""sys.exit from deep inside, with finally blocks on the way out."""

import sys


def deep(code):
    try:
        sys.exit(code)
    finally:
        print("finally on the way out", flush=True)


print("start", flush=True)
deep(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
