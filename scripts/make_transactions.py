"""Simulate raw card transactions with four fraud scenarios, seeded, as a fraud team would export them.

Follows the simulator of the ULB handbook (Le Borgne, Siblini, Lebichot, Bontempi, "Reproducible Machine Learning
for Credit Card Fraud Detection - Practical Handbook", 2022, chapter 3.2): customers with a location, a mean and
spread of amounts and a number of transactions per day; terminals with a location; each day a Poisson number of
transactions per customer, at a time of day around noon, at a terminal within radius 5 of the customer. Its
three fraud scenarios:

1. every amount over 220 is fraud;
2. each day two terminals are compromised: their transactions of the next 28 days are fraud;
3. each day three cards are compromised: a third of their transactions of the next 14 days carry five times the
   amount and are fraud.

(Two terminals a day among 10,000 and three cards a day among 5,000, as the handbook's; a smaller run draws a
Poisson number a day at the same rates, so that its fraud rate stays near the full run's.)

Added here, for what a real export has: a channel (card present or not), a merchant category and a country per
terminal, and a fourth scenario that only the card's sequence shows:

4. card testing: each day two cards (among 5,000) make a burst of 3-8 small amounts (0.50-3.00) at online merchants new to the
   card, seconds to minutes apart, then one large amount (150-219, under scenario 1's threshold) within the hour.

Columns: transaction_id, timestamp (ISO 8601, UTC), card_id (numeric, as card exports have), merchant_id,
amount, channel, merchant_category, country, is_fraud (0/1) and scenario (0 genuine, 1-4 above): the last two
are ground truth.

    python scripts/make_transactions.py --out transactions.csv.gz                       # 5,000 cards, 183 days
    python scripts/make_transactions.py --customers 600 --terminals 1200 --days 60 --out data/transactions_sample.csv.gz
"""
import argparse
import datetime
import os
import time

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

RADIUS = 5.0
DAY = 86_400
CATEGORIES_PRESENT = {"grocery": 0.30, "restaurant": 0.18, "fuel": 0.12, "retail": 0.15, "pharmacy": 0.07,
                      "entertainment": 0.06, "travel": 0.04, "electronics": 0.05, "utilities": 0.03}
CATEGORIES_ONLINE = {"retail": 0.30, "digital_goods": 0.25, "travel": 0.15, "electronics": 0.15,
                     "entertainment": 0.10, "utilities": 0.05}
HOME = "BE"
BORDERS = ("NL", "FR", "DE", "LU")  # the terminals near the grid's edges
ONLINE_ABROAD = ("NL", "FR", "DE", "GB", "US", "IE", "CN", "LT")


def customers(n, rng):
    """Customer profiles: location, mean and spread of amounts, mean transactions per day."""
    mean_amount = rng.uniform(5, 100, n)
    return {"x": rng.uniform(0, 100, n), "y": rng.uniform(0, 100, n), "mean_amount": mean_amount,
            "std_amount": mean_amount / 2, "per_day": rng.uniform(0, 4, n)}


def terminals(n, rng):
    """Terminals: location, channel (a quarter online), merchant category and country."""
    x, y = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    online = rng.random(n) < 0.25
    category = np.where(online, rng.choice(list(CATEGORIES_ONLINE), n, p=list(CATEGORIES_ONLINE.values())),
                        rng.choice(list(CATEGORIES_PRESENT), n, p=list(CATEGORIES_PRESENT.values())))
    edge = np.minimum.reduce([x, y, 100 - x, 100 - y])
    border = np.array(BORDERS)[((x > 50).astype(int) * 2 + (y > 50).astype(int))]
    country = np.where(edge < 8, border, HOME)
    abroad = rng.random(n) < 0.4
    country = np.where(online & abroad, rng.choice(ONLINE_ABROAD, n), np.where(online, HOME, country))
    return {"x": x, "y": y, "online": online, "category": category, "country": country}


def nearby_terminals(people, places):
    """For each customer the terminals within RADIUS, as (offsets, flat indices) of a ragged array."""
    tree = cKDTree(np.column_stack([places["x"], places["y"]]))
    lists = tree.query_ball_point(np.column_stack([people["x"], people["y"]]), RADIUS)
    counts = np.array([len(found) for found in lists])
    flat = np.fromiter((t for found in lists for t in found), dtype=np.int64, count=int(counts.sum()))
    return np.concatenate([[0], np.cumsum(counts)]), flat


def genuine(people, offsets, flat, days, rng):
    """The handbook's transactions: Poisson per customer and day, time around noon, amount from the profile."""
    n = len(people["x"])
    per_day = rng.poisson(people["per_day"][:, None], (n, days))
    card = np.repeat(np.repeat(np.arange(n), days), per_day.ravel())
    day = np.repeat(np.tile(np.arange(days), n), per_day.ravel())
    seconds = np.rint(rng.normal(DAY / 2, 20_000, len(card)))
    available = offsets[card + 1] - offsets[card]
    keep = (seconds > 0) & (seconds < DAY) & (available > 0)
    card, day, seconds, available = card[keep], day[keep], seconds[keep], available[keep]
    amount = rng.normal(people["mean_amount"][card], people["std_amount"][card])
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * people["mean_amount"][card[negative]])
    terminal = flat[offsets[card] + (rng.random(len(card)) * available).astype(np.int64)]
    return {"card": card, "terminal": terminal, "time": day * DAY + seconds.astype(np.int64),
            "amount": np.round(amount, 2)}


def card_testing(people, places, offsets, flat, days, rng):
    """Scenario 4's transactions: bursts of small online amounts at new merchants, then a large one."""
    online = np.flatnonzero(places["online"])
    rows = {"card": [], "terminal": [], "time": [], "amount": []}
    for day in range(days):
        for card in rng.choice(len(people["x"]), rng.poisson(2 * len(people["x"]) / 5_000), replace=False):
            known = set(flat[offsets[card]:offsets[card + 1]].tolist())
            fresh = np.array([t for t in rng.choice(online, 30, replace=False) if t not in known])
            burst = int(rng.integers(3, 9))
            start = day * DAY + int(rng.integers(0, DAY - 7_200))
            times = start + np.cumsum(rng.integers(20, 240, burst))
            big = times[-1] + int(rng.integers(300, 3_600))
            rows["card"] += [card] * (burst + 1)
            rows["terminal"] += fresh[:burst + 1].tolist()
            rows["time"] += [*times.tolist(), big]
            rows["amount"] += [*np.round(rng.uniform(0.5, 3.0, burst), 2).tolist(), round(rng.uniform(150, 219), 2)]
    return {key: np.array(values) for key, values in rows.items()}


def frauds(tx, n_customers, n_terminals, days, rng):
    """Scenarios 1-3 of the handbook on the genuine transactions: the scenario per transaction (0 genuine);
    scenario 3 also multiplies amounts by five."""
    scenario = np.zeros(len(tx["card"]), dtype=np.int8)
    scenario[tx["amount"] > 220] = 1
    day = tx["time"] // DAY
    compromised_until = np.full(n_terminals, -1)
    compromised_from = np.full(n_terminals, days + 1)
    for start in range(days):  # a terminal compromised again extends its window (the handbook's union)
        for terminal in rng.choice(n_terminals, rng.poisson(2 * n_terminals / 10_000), replace=False):
            compromised_from[terminal] = min(compromised_from[terminal], start)
            compromised_until[terminal] = start + 28
    on_terminal = (day >= compromised_from[tx["terminal"]]) & (day < compromised_until[tx["terminal"]])
    scenario[on_terminal] = 2
    card_from = np.full(n_customers, days + 1)
    card_until = np.full(n_customers, -1)
    for start in range(days):
        for card in rng.choice(n_customers, rng.poisson(3 * n_customers / 5_000), replace=False):
            card_from[card] = min(card_from[card], start)
            card_until[card] = start + 14
    in_window = (day >= card_from[tx["card"]]) & (day < card_until[tx["card"]])
    chosen = in_window & (rng.random(len(scenario)) < 1 / 3)
    tx["amount"][chosen] = np.round(tx["amount"][chosen] * 5, 2)
    scenario[chosen] = 3
    return scenario


def simulate(n_customers=5_000, n_terminals=10_000, days=183, seed=0, start="2018-04-01"):
    """The transactions as a DataFrame in time order (columns as in the module's docstring)."""
    rng = np.random.default_rng(seed)
    people, places = customers(n_customers, rng), terminals(n_terminals, rng)
    offsets, flat = nearby_terminals(people, places)
    tx = genuine(people, offsets, flat, days, rng)
    scenario = frauds(tx, n_customers, n_terminals, days, rng)
    testing = card_testing(people, places, offsets, flat, days, rng)
    for key in tx:
        tx[key] = np.concatenate([tx[key], testing[key]])
    scenario = np.concatenate([scenario, np.full(len(testing["card"]), 4, dtype=np.int8)])
    order = np.lexsort((tx["card"], tx["time"]))
    epoch = datetime.datetime.fromisoformat(start).replace(tzinfo=datetime.timezone.utc).timestamp()
    times = pd.to_datetime(epoch + tx["time"][order], unit="s", utc=True)
    terminal = tx["terminal"][order]
    return pd.DataFrame({
        "transaction_id": [f"tx{n:08d}" for n in range(len(order))],
        "timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "card_id": 4_000_000 + tx["card"][order],
        "merchant_id": [f"T{t:06d}" for t in terminal],
        "amount": tx["amount"][order],
        "channel": np.where(places["online"][terminal], "card_not_present", "card_present"),
        "merchant_category": places["category"][terminal],
        "country": places["country"][terminal],
        "is_fraud": (scenario[order] > 0).astype(np.int8),
        "scenario": scenario[order],
    })


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5_000, help="cards (one per customer)")
    parser.add_argument("--terminals", type=int, default=10_000, help="merchant terminals")
    parser.add_argument("--days", type=int, default=183, help="days simulated")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--start", default="2018-04-01", help="first day (UTC), as the handbook's")
    parser.add_argument("--out", required=True, help="file to write: .csv, .csv.gz or .parquet")
    args = parser.parse_args()
    started = time.perf_counter()
    frame = simulate(args.customers, args.terminals, args.days, args.seed, args.start)
    if args.out.endswith(".parquet"):
        frame.to_parquet(args.out, index=False)
    else:
        frame.to_csv(args.out, index=False)
    counts = frame["scenario"].value_counts().sort_index()
    print(f"{len(frame):,} transactions, {frame['is_fraud'].sum():,} frauds ({frame['is_fraud'].mean():.2%}); "
          f"by scenario {dict(counts.items())}; {os.path.getsize(args.out) / 1e6:.1f} MB in "
          f"{time.perf_counter() - started:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
