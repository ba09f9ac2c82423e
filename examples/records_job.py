"""A small batch job with one malformed record in its input.

It prices 300 records and writes one line per record to a file opened in a
`with` block. Record 117 has no valid price, and the job fails deep inside
`parse_price` -- under plain `python` the work done so far is lost.

    resurrect run examples/records_job.py
        pauses at the failing statement before anything unwinds (the output
        file is still open). Fix the value and go on, for instance:
            (resurrect) text = "9.25"
            (resurrect) retry
        or go `up` to `process()` and fix the whole record there:
            (resurrect) up 2
            (resurrect) line = "item-117,6,9.25"
            (resurrect) retry

    resurrect run --on-error skip examples/records_job.py
        skips each failing statement, reports it, and finishes the job (the
        bad record is left out); a summary of what was skipped comes at exit.
"""

import sys
import tempfile
from pathlib import Path

N_RECORDS = 300
BAD_RECORD = 117


def price_of(i):
    return f"{1.25 * (i % 11) + 0.5:.2f}"


def make_records():
    records = [f"item-{i:03d},{i % 7 + 1},{price_of(i)}" for i in range(N_RECORDS)]
    name, qty, _ = records[BAD_RECORD].split(",")
    records[BAD_RECORD] = f"{name},{qty},n/a"  # malformed: the price is not a number
    return records


def parse_price(text):
    return round(float(text), 2)


def parse_record(line):
    name, qty, price = line.split(",")
    return {"name": name, "qty": int(qty), "price": parse_price(price)}


def line_total(record):
    return record["qty"] * record["price"]


def process(records, out):
    total = 0.0
    for line in records:
        record = parse_record(line)
        amount = line_total(record)
        total += amount
        out.write(f"{record['name']},{record['qty']},{amount:.2f}\n")
    return total


def main(out_path):
    records = make_records()
    with open(out_path, "w") as out:
        total = process(records, out)
        out.write(f"total,{total:.2f}\n")
    written = len(out_path.read_text().splitlines())
    print(f"processed {len(records)} records, wrote {written} lines to {out_path}")
    print(f"total value: {total:.2f}")


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "records_job.out"
    )
