"""Fails inside a `with` block and a `try`/`finally`: the prompt opens before
either cleans up."""


class Resource:
    closed = False

    def __enter__(self):
        print("opened", flush=True)
        return self

    def __exit__(self, *exc):
        self.closed = True
        print("resource closed", flush=True)
        return False


def work(res, items):
    try:
        for item in items:
            res.last = 100 // item  # @fail
    finally:
        print("finally ran", flush=True)


with Resource() as res:
    work(res, [5, 0])
print("done", res.last)
