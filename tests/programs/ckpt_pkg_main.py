"""A program whose failing frame is in an imported (instrumented) module that
keeps state of its own (a counter, a registry of its class's instances).

usage: ckpt_pkg_main.py
"""

import ckpt_pkg_helper as helper


def main():
    out = []
    for word in ["alpha", "beta", "gamma", "delta"]:
        out.append(helper.measure(word))
    print(out, helper.CALLS, [t.word for t in helper.SEEN], helper.SEEN[0].tag())


main()
