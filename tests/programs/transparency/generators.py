"""Generators: StopIteration, close(), throw(), and yield from."""


def numbers(n):
    yield from range(n)


def guarded():
    try:
        yield 1
        yield 2
    except ValueError as e:
        print("generator caught", e)
        yield 99
    finally:
        print("generator finally")


def delegating():
    result = yield from numbers(2)
    return result


def main():
    print(list(numbers(3)))
    it = numbers(1)
    print(next(it))
    try:
        next(it)
    except StopIteration:
        print("exhausted")
    g = guarded()
    print(next(g))
    print(g.throw(ValueError("thrown in")))
    g.close()
    h = guarded()
    next(h)
    h.close()
    print(list(delegating()))
    print(sum(x * x for x in numbers(4)))
    print([y for y in (x + 1 for x in numbers(3)) if y % 2])


main()
