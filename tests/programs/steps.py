"""Three steps; the second one fails."""


def main():
    done = []
    done.append("first")
    done.append(int("second"))  # @fail
    done.append("third")
    print("done", done)


main()
