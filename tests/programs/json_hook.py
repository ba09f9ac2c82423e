"""User code called back by a library (json's object_hook) fails."""

import json


def hook(obj):
    return {k: int(v) for k, v in obj.items()}  # @fail


def main():
    data = json.loads('{"a": "1", "b": "x"}', object_hook=hook)  # @call
    print(data)


main()
