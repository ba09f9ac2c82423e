"""A stand-in for $EDITOR in the `edit` tests: called as `EDITOR +LINE FILE`, it
records its arguments and applies the replacement in $RELOAD_EDIT
("OLD=>NEW") to FILE."""

import os
import sys

line, path = sys.argv[1], sys.argv[2]
with open(os.environ["RELOAD_EDITOR_LOG"], "a") as log:
    log.write(f"{line} {os.path.basename(path)}\n")
old, new = os.environ["RELOAD_EDIT"].split("=>")
with open(path) as f:
    text = f.read()
with open(path, "w") as f:
    f.write(text.replace(old, new))
