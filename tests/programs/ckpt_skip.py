"""Fails at one item; ``resume --skip`` continues after the failing statement."""


def risky(i, out):
    out.append(10 // (i - 2))  # @fails at i == 2
    return len(out)


def main():
    out = []
    counts = []
    for i in range(5):
        counts.append(risky(i, out))
    print(out, counts)


main()
