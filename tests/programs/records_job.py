"""A batch job: prices a few hundred records and writes one line per record.

usage: records_job.py OUT [--bad N]

With ``--bad N`` record N has a malformed price; the job fails deep inside
``parse_price`` while the output file is open in a ``with`` block.
"""

import sys

N_RECORDS = 300


def price_of(i):
    return f"{1.25 * (i % 11) + 0.5:.2f}"


def make_records(bad=None):
    records = [f"item-{i:03d},{i % 7 + 1},{price_of(i)}" for i in range(N_RECORDS)]
    if bad is not None:
        name, qty, _ = records[bad].split(",")
        records[bad] = f"{name},{qty},n/a"
    return records


def parse_price(text):
    return round(float(text), 2)  # @fail


def parse_record(line):
    name, qty, price = line.split(",")
    return {"name": name, "qty": int(qty), "price": parse_price(price)}  # @parse


def line_total(record):
    return record["qty"] * record["price"]


def process(records, out):
    total = 0.0
    for line in records:
        record = parse_record(line)  # @process
        amount = line_total(record)
        total += amount
        out.write(f"{record['name']},{record['qty']},{amount:.2f}\n")
    return total


def main(argv):
    out_path = argv[1]
    bad = int(argv[3]) if len(argv) > 3 and argv[2] == "--bad" else None
    records = make_records(bad)
    with open(out_path, "w") as out:
        total = process(records, out)  # @main
        out.write(f"total,{total:.2f}\n")
    print(f"wrote {len(records)} records, total {total:.2f}")


if __name__ == "__main__":
    main(sys.argv)
