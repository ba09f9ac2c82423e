"""A program that establishes its own restarts with resurrect.restart_case."""

import resurrect


def parse(entry):
    return int(entry)  # @fail


def main():
    out = []
    for entry in ["1", "x", "3"]:
        with resurrect.restart_case(
            use_default=(lambda value=0: value, "use a default value for the entry"),
            drop_entry=lambda: "dropped",
        ) as r:
            r.value = parse(entry)
        out.append(r.value)
    print("out", out)


main()
