"""An error raised while handling another, with an explicit cause too."""


class ConfigError(Exception):
    pass


def load(settings):
    try:
        return settings["port"]
    except KeyError as e:
        raise ConfigError("no port configured") from e  # @fail


def main():
    settings = {"host": "localhost"}
    try:
        int(settings["host"])
    except ValueError:
        port = load(settings)  # @call
    print(port)


main()
