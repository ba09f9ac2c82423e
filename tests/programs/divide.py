"""Divides 10 by a few numbers; one of them is zero."""


def ratio(numerator, denominator):
    quotient = numerator / denominator  # @fail
    return quotient  # @return


def main():
    results = []
    for b in [1, 2, 0, 4]:
        r = ratio(10, b)  # @call
        results.append(r)
    print("results", results)


if __name__ == "__main__":
    main()  # @main
