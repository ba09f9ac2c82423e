"""Divides 10 by a few numbers; one of them is zero (edit-and-continue tests)."""


def ratio(numerator, denominator):
    quotient = numerator / denominator  # @fail
    return quotient


def main():
    results = []
    for b in [1, 2, 0, 4]:
        results.append(ratio(10, b))  # @call
    print("results", results)


if __name__ == "__main__":
    main()
