"""A small batch job with one bad record in its input (placeholder example).

Plain `python examples/records_job.py` dies at the malformed record and loses
the work done so far; `resurrect run --on-error skip examples/records_job.py`
skips the statement that failed and finishes the job.
"""

import tempfile
from pathlib import Path

RECORDS = [f"item-{i:03d},{i % 7 + 1},{1.25 * (i % 11):.2f}" for i in range(200)]
RECORDS[117] = "item-117,3,n/a"  # malformed: the price is not a number

out_path = Path(tempfile.gettempdir()) / "records_job.out"
total = 0.0
with open(out_path, "w") as out:
    for record in RECORDS:
        name, qty, price = record.split(",")
        total += int(qty) * float(price)
        out.write(f"{name},{int(qty) * float(price):.2f}\n")

written = len(out_path.read_text().splitlines())
print(f"processed {len(RECORDS)} records, wrote {written} lines to {out_path}")
print(f"total value: {total:.2f}")
