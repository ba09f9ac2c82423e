"""pytest.raises and unittest's assertRaises around failing code."""

import unittest

import pytest


def boom():
    raise ValueError("expected")


with pytest.raises(ValueError, match="expected"):
    boom()
print("pytest.raises ok")

with pytest.raises(ZeroDivisionError):
    1 / 0  # noqa: B018
print("pytest.raises ok again")


class T(unittest.TestCase):
    def test_it(self):
        with self.assertRaises(KeyError):
            {}["k"]
        self.assertRaises(ValueError, int, "x")


result = unittest.TextTestRunner(stream=open("/dev/null", "w"), verbosity=0).run(
    unittest.defaultTestLoader.loadTestsFromTestCase(T)
)
print("unittest ok", result.wasSuccessful())
