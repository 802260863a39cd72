"""Real imbalanced tables for the benchmarks (bench/suite.py's development suite, bench/compare_peers.py).

Every loader returns (features float32, binary truth int8) and downloads nothing at run time beyond pip (ISLP's
wheel, once, into a cache folder):

- ``creditcard``: the ULB credit-card fraud file (Dal Pozzolo et al., "Calibrating probability with undersampling
  for unbalanced classification", IEEE CIDM 2015; Kaggle "Credit Card Fraud Detection"), 284,807 transactions,
  492 frauds (0.17%), read from ``../shared/data/creditcard.csv.gz``; the bundled 10% sample
  (data/creditcard_sample.csv.gz, 28,481 rows, 49 frauds) stands in as ``creditcard_sample`` where it is absent.
- ``caravan``: the CoIL 2000 Challenge insurance table (van der Putten and van Someren, "CoIL Challenge 2000: the
  insurance company case", 2000), ISLP's copy (James, Witten, Hastie, Tibshirani and Taylor, "An Introduction to
  Statistical Learning with Applications in Python", 2023): 5,822 customers, 348 bought a caravan policy (6%).
- ``default``: ISLP's simulated ``Default`` table (ISLR, chapter 4): 10,000 card holders, 333 defaulted (3.3%);
  features student (0/1), balance, income. One strong feature: an easy, very imbalanced table.
- ``wage_high``: ISLP's ``Wage`` table (the 2003-2009 Current Population Survey, mid-Atlantic men, ISLR chapter 7):
  3,000 workers, target "earns over 250 (thousand dollars a year)", 79 of them (2.6%); features year, age and the
  categorical columns one-hot; wage and logwage left out (they are the target).
- ``digits9``: scikit-learn's bundled copy of the UCI "Optical Recognition of Handwritten Digits" test set
  (Alpaydin and Kaynak, 1998): 1,797 8x8 images, target "is it a 9", 180 of them (10%); the positives form one
  cluster among nine others, far from the pool's anomalies.
- ``breast_cancer_rare``: scikit-learn's bundled Wisconsin Diagnostic Breast Cancer table (Street, Wolberg and
  Mangasarian, 1993), 30 features, all 357 benign and a fixed draw of 19 of the 212 malignant (5% positives,
  376 rows): a tiny table where budgets beyond its pool of 300 are cut. Saturated (every method 1.000 AUPRC on
  the development seeds): kept as a smoke table, out of the suite.
- ``college_elite``: ISLP's ``College`` table (US News and World Report, 1995; ISLR chapter 2): 777 colleges,
  target "more than 60% of new students from the top 10% of their high-school class", 42 of them (5.4%); features
  Private and the other 15 numbers (Top10perc and Top25perc left out). A small, moderately hard table: the
  positives are not the pool's outliers along one axis but a corner of several correlated ones.
- ``transactions``: the simulated raw card transactions of the raw-transaction issue (data/transactions_sample.csv.gz,
  scripts/make_transactions.py after Le Borgne et al.'s "Reproducible Machine Learning for Credit Card Fraud
  Detection" simulator): 64,827 transactions, 645 frauds (1%), target is_fraud; features as the product makes them
  (models.features): amount, channel / merchant category / country one-hot, the time features and the card's and
  merchant's history. The split is the suite's random one, not by time.
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


DATA = os.path.join(ROOT, "data")
CREDITCARD_SAMPLE = os.path.join(DATA, "creditcard_sample.csv.gz")
TRANSACTIONS_SAMPLE = os.path.join(DATA, "transactions_sample.csv.gz")
RARE_SEED = 0  # the fixed draw of breast_cancer_rare's positives


def islp_csv(name, cache=CACHE):
    """The bytes of ISLP's data/NAME.csv: from the installed ISLP package, else from the ISLP wheel in ``cache``
    (downloaded by pip on first use, as for Caravan)."""
    spec = importlib.util.find_spec("ISLP")
    if spec is not None:
        with open(os.path.join(spec.submodule_search_locations[0], "data", f"{name}.csv"), "rb") as stream:
            return stream.read()
    if name == "Caravan":
        return caravan_csv(cache)
    caravan_csv(cache)  # fetches the wheel when missing
    with zipfile.ZipFile(os.path.join(cache, f"islp-{ISLP_VERSION}-py3-none-any.whl")) as archive:
        return archive.read(f"ISLP/data/{name}.csv")


def _numeric(frame):
    """``frame``'s columns as float32: numbers as they are, text columns one-hot (every category a column)."""
    text = [column for column in frame.columns if not pd.api.types.is_numeric_dtype(frame[column])]
    return pd.get_dummies(frame, columns=text, dtype=np.float32).to_numpy(dtype=np.float32)


def default():
    """(features, truth) of ISLP's Default: student (0/1), balance, income; truth = default is "Yes"."""
    frame = pd.read_csv(io.BytesIO(islp_csv("Default")))
    y = (frame.pop("default") == "Yes").to_numpy(dtype=np.int8)
    frame["student"] = (frame["student"] == "Yes").astype(np.float32)
    return frame.to_numpy(dtype=np.float32), y


def wage_high(threshold=250.0):
    """(features, truth) of ISLP's Wage: year, age and the categories one-hot; truth = wage above ``threshold``
    (thousands of dollars). wage and logwage are left out."""
    frame = pd.read_csv(io.BytesIO(islp_csv("Wage")))
    y = (frame.pop("wage") > threshold).to_numpy(dtype=np.int8)
    frame = frame.drop(columns=["logwage"])
    return _numeric(frame), y


def digits9(digit=9):
    """(features, truth) of scikit-learn's bundled digits: the 64 pixels, truth = the image is ``digit``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data.astype(np.float32), (digits.target == digit).astype(np.int8)


def breast_cancer_rare(share=0.05, seed=RARE_SEED):
    """(features, truth) of scikit-learn's bundled breast-cancer table with the malignant cases (truth 1) cut to
    ``share`` of the rows by a fixed draw: every benign case kept."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    malignant = np.flatnonzero(data.target == 0)  # scikit-learn codes malignant 0, benign 1
    benign = np.flatnonzero(data.target == 1)
    count = int(round(share * len(benign) / (1.0 - share)))
    kept = np.sort(np.concatenate([benign, np.random.default_rng(seed).choice(malignant, count, replace=False)]))
    return data.data[kept].astype(np.float32), (data.target[kept] == 0).astype(np.int8)


def college_elite(threshold=60):
    """(features, truth) of ISLP's College: Private (0/1) and the other numbers; truth = more than ``threshold``
    percent of new students from the top 10% of their high-school class. Top10perc and Top25perc are left out
    (they are the target and its near copy)."""
    frame = pd.read_csv(io.BytesIO(islp_csv("College")))
    y = (frame.pop("Top10perc") > threshold).to_numpy(dtype=np.int8)
    frame = frame.drop(columns=["Top25perc"])
    frame["Private"] = (frame["Private"] == "Yes").astype(np.float32)
    return frame.to_numpy(dtype=np.float32), y


def transactions(path=TRANSACTIONS_SAMPLE):
    """(features, truth) of the simulated raw transactions at ``path``: amount, the categories one-hot, the time
    features and the card's and merchant's history (models.features, as the product's import makes them);
    truth = is_fraud. Rows in time order."""
    sys.path.insert(0, ROOT)
    from models import features

    frame = pd.read_csv(path).sort_values(["timestamp", "transaction_id"], kind="stable")
    seconds = (pd.to_datetime(frame["timestamp"], utc=True).astype("int64") // 10 ** 9).to_numpy(np.float64)
    amount = frame["amount"].to_numpy(np.float64)
    columns = [amount[:, None].astype(np.float32)]
    for column in ("channel", "merchant_category", "country"):
        values = frame[column].to_numpy(dtype=object)
        columns.append(features.one_hot(values, features.category_vocabulary(values, 50), column)[0])
    columns.append(features.time_features(seconds)[0])
    history, _ = features.entity_features(seconds, [("card_id", frame["card_id"].to_numpy()),
                                                    ("merchant_id", frame["merchant_id"].to_numpy(dtype=object))],
                                         amount)
    columns.append(history)
    return np.column_stack(columns).astype(np.float32), frame["is_fraud"].to_numpy(dtype=np.int8)


def creditcard_sample(path=CREDITCARD_SAMPLE):
    """(features, truth) of the bundled 10% sample of the credit-card file (as ``creditcard``)."""
    return creditcard(path)


LOADERS = {
    "creditcard": creditcard,
    "caravan": caravan,
    "default": default,
    "wage_high": wage_high,
    "digits9": digits9,
    "breast_cancer_rare": breast_cancer_rare,
    "college_elite": college_elite,
    "transactions": transactions,
    "creditcard_sample": creditcard_sample,
}
SUITE = ("creditcard", "caravan", "default", "wage_high", "digits9", "college_elite", "transactions")


def suite_tables(names="all"):
    """The table names of ``names`` ("all" or comma-separated): "all" is SUITE with the credit-card file replaced
    by the bundled sample when the file is absent. Raises SystemExit for an unknown name."""
    chosen = list(SUITE) if names == "all" else [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in LOADERS]
    if unknown:
        raise SystemExit(f"--tables: unknown table {unknown[0]!r} (known: {', '.join(LOADERS)})")
    if names == "all" and not os.path.exists(CREDITCARD):
        print(f"note: {CREDITCARD} is absent: the bundled sample stands in (creditcard_sample)", file=sys.stderr)
        chosen[chosen.index("creditcard")] = "creditcard_sample"
    return chosen


def load(name):
    """(features, truth) of table ``name`` (a LOADERS key)."""
    return LOADERS[name]()
