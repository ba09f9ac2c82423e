import sys

print("pkgdemo main", __name__, __package__, sys.argv[1:])
raise SystemExit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
