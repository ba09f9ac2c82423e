"""The imported half of ckpt_pkg_main.py: ``measure`` fails on "gamma"."""

CALLS = 0
SEEN = []


class Token:
    def __init__(self, word):
        self.word = word

    def tag(self):
        return f"<{self.word}>"


def weight(word):
    return {"alpha": 1, "beta": 2, "delta": 4}[word]  # @bug: no "gamma"


def measure(word):
    global CALLS
    CALLS += 1
    SEEN.append(Token(word))
    return len(word) * weight(word)
