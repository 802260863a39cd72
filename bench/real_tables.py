"""Real imbalanced tables for the benchmarks: the credit-card fraud file and the CoIL 2000 Caravan table.

Both loaders return (features float32, binary truth int8). Caravan is ISLP's copy (5,822 customers, 348 bought
a caravan policy: 6%): read from the installed ISLP package when there is one, else from the ISLP wheel, fetched
once with ``pip download islp --no-deps`` into a cache folder (ISLP's own dependencies, torch among them, are
never installed for this).
"""
import importlib.util
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CREDITCARD = os.path.join(ROOT, "..", "shared", "data", "creditcard.csv.gz")
ISLP_VERSION = "0.6.0"
CARAVAN_MEMBER = "ISLP/data/Caravan.csv"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "labeler-bench")


def creditcard(path=CREDITCARD, with_time=False):
    """(features, truth) of the credit-card file at ``path``: the 29 features V1..V28 and Amount (Time dropped
    unless ``with_time``), truth = Class. Raises OSError when the file cannot be read."""
    frame = pd.read_csv(path)
    y = frame.pop("Class").to_numpy(dtype=np.int8)
    if not with_time:
        frame = frame.drop(columns=["Time"])
    return frame.to_numpy(dtype=np.float32), y


def caravan_csv(cache=CACHE):
    """The bytes of ISLP's Caravan.csv: from the installed ISLP package, else from the ISLP wheel in ``cache``
    (downloaded there by pip on first use). Raises RuntimeError when pip cannot fetch the wheel."""
    spec = importlib.util.find_spec("ISLP")
    if spec is not None:
        with open(os.path.join(spec.submodule_search_locations[0], "data", "Caravan.csv"), "rb") as stream:
            return stream.read()
    wheel = os.path.join(cache, f"islp-{ISLP_VERSION}-py3-none-any.whl")
    if not os.path.exists(wheel):
        os.makedirs(cache, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", f"islp=={ISLP_VERSION}", "--no-deps", "-q", "-d", cache]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not os.path.exists(wheel):
            raise RuntimeError(f"could not fetch the ISLP wheel for Caravan ({' '.join(command)}): "
                               f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no wheel'}")
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(CARAVAN_MEMBER)


def caravan(cache=CACHE):
    """(features, truth) of Caravan: all 85 features, truth = Purchase is "Yes"."""
    frame = pd.read_csv(io.BytesIO(caravan_csv(cache)))
    y = (frame.pop("Purchase") == "Yes").to_numpy(dtype=np.int8)
    return frame.to_numpy(dtype=np.float32), y
