"""Remake data/creditcard_sample.csv.gz: a stratified 10% sample of the credit-card fraud file.

The sample keeps the real fraud rate and the original rows byte for byte (header and Class quoted).
Usage: python scripts/make_sample.py [--source ../shared/data/creditcard.csv.gz] [--fraction 0.1] [--seed 0]
"""
import argparse
import gzip
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=os.path.join(ROOT, "..", "shared", "data", "creditcard.csv.gz"),
                        help="The full credit-card file (CSV or CSV.gz).")
    parser.add_argument("--out", default=os.path.join(ROOT, "data", "creditcard_sample.csv.gz"),
                        help="Where to write the sample.")
    parser.add_argument("--fraction", type=float, default=0.1, help="Share of each class to keep.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed of the sample.")
    args = parser.parse_args()

    opener = gzip.open if args.source.endswith(".gz") else open
    with opener(args.source, "rt", newline="") as handle:
        header, *lines = handle.readlines()
    classes = np.array([line.rstrip().rsplit(",", 1)[1].strip('"') for line in lines])
    rng = np.random.default_rng(args.seed)
    keep = []
    for value in np.unique(classes):
        rows = np.flatnonzero(classes == value)
        keep.append(rng.choice(rows, size=round(len(rows) * args.fraction), replace=False))
    keep = np.sort(np.concatenate(keep))
    with gzip.GzipFile(args.out, "wb", compresslevel=9, mtime=0) as out:
        out.write(header.encode())
        out.writelines(lines[i].encode() for i in keep)
    frauds = int((classes[keep] == "1").sum())
    print(f"Wrote {args.out}: {len(keep):,} rows, {frauds} frauds ({frauds / len(keep):.3%}), "
          f"{os.path.getsize(args.out) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
