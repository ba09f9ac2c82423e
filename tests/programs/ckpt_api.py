"""``resurrect.checkpoint()`` inside a loop: resuming continues in the
statement that called it, where it returns the checkpoint's path."""

from resurrect import checkpoint


def main():
    total = 0
    seen = []
    for i in range(5):
        total += i
        seen.append(i)
        if i == 2:
            path = checkpoint()
            print("checkpoint at", i, path.endswith(".ckpt"), flush=True)
    print("total", total, seen)


main()
