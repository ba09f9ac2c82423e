"""Stands in for ``resurrect run|resume|checkpoints`` with checkpoint options
until ``cli.py`` wires them: ``python ckpt_launch.py run [--checkpoint-dir DIR]
[--checkpoint-on SIG]... [--checkpoint-every S] [run options] SCRIPT ARGS``
installs checkpoints, then runs ``resurrect run`` in this process."""

import sys

from resurrect import checkpoint, cli


def main(argv):
    command, rest = argv[0], argv[1:]
    if command == "resume":
        return checkpoint.resume_main(rest)
    if command == "checkpoints":
        return checkpoint.list_main(rest)
    assert command == "run", command
    directory, signals, every = None, [], None
    passed = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--checkpoint-dir":
            directory = rest[i + 1]
            i += 2
        elif arg == "--checkpoint-on":
            signals.append(rest[i + 1])
            i += 2
        elif arg == "--checkpoint-every":
            every = float(rest[i + 1])
            i += 2
        elif arg in ("--on-error", "--instrument"):
            passed += rest[i : i + 2]
            i += 2
        elif arg in ("-m", "-c") or arg.startswith(("-m", "-c")):
            passed += rest[i:]
            break
        elif arg.startswith("-"):
            passed.append(arg)
            i += 1
        else:
            with open(arg, "rb") as f:
                checkpoint.note_source(arg, f.read())
            passed += rest[i:]
            break
    checkpoint.install(directory, signals, every)
    return cli.main(["run", *passed])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
