"""Remake data/digits.npz: scikit-learn's bundled handwritten digits as an image NPZ (no download).

1,797 images of 8×8 pixels, 10 classes: scikit-learn's copy of the UCI "Optical Recognition of Handwritten Digits"
test set (E. Alpaydin and C. Kaynak, 1998; CC BY 4.0). Their values 0..16 are stored as 8-bit pixels
(round(v × 255 / 16), ink bright on black as in MNIST), ``X`` uint8 of shape 1797×8×8 and ``y`` uint8 0..9. The
file is byte for byte the same on every run (fixed member times).
Usage: python scripts/make_digits.py [--out data/digits.npz]
"""
import argparse
import io
import os
import zipfile

import numpy as np
from sklearn.datasets import load_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_npz(path, arrays):
    """Write ``arrays`` ({name: array}) as a compressed NPZ whose bytes depend on the arrays alone."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "data", "digits.npz"), help="Where to write the file.")
    args = parser.parse_args()
    digits = load_digits()
    pixels = np.round(digits.images * 255.0 / 16.0).astype(np.uint8)
    write_npz(args.out, {"X": pixels, "y": digits.target.astype(np.uint8)})
    print(f"Wrote {args.out}: {len(pixels):,} images of 8×8, classes {sorted(set(digits.target.tolist()))}, "
          f"{os.path.getsize(args.out) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
