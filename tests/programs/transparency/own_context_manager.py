"""A context manager of the program's own that swallows exceptions."""


class Swallow:
    def __enter__(self):
        return self

    def __exit__(self, typ, value, tb):
        if typ is not None:
            print("swallowed", typ.__name__)
        return True


def work():
    with Swallow():
        [].pop()
    return "after own context manager"


print(work())
