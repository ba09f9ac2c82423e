"""A call that fails the first time and works when called again."""

attempts = 0


def fetch(n):
    global attempts
    attempts += 1  # @first
    if attempts < 2:
        raise ConnectionError(f"attempt {attempts} failed")  # @fail
    return n * 2


print("fetched", fetch(21), "after", attempts, "attempts")
