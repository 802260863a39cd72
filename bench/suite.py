"""The development suite (issue 20): labeler's default loop against the peers of bench/compare_peers.py on every
table of bench/real_tables.py, one table of figures and a rank plot.

    pip install -e '.[bench]'
    nice -n 19 python bench/suite.py --tables all --seeds 10,11,12 --budgets 100,250,500    # development
    nice -n 19 python bench/suite.py --tables all --seeds 0,1,2,3,4,5,6,7,8,9 --budgets 100,250,500,1000  # report

Protocol (compare_peers.py's, reused: ``run_default`` and ``run_peer``): a stratified 80/20 split per seed, the
pool's ground truth is the oracle, batches of 10; test AUPRC after each batch, of the product's logistic model for
the peers and of the model the loop selects for labeler's loops. Methods: ``default`` (the loop as shipped),
``adaptive`` (the same loop with the ``adaptive`` setting on: models.adaptive), random, plain uncertainty,
scikit-activeml's query-by-committee and CoreSet, small-text's greedy core-set. Each run (table, method, seed) is
kept in OUT/suite_runs/ as JSON and reused by later calls that ask for no larger budget (``--fresh`` reruns), so a
suite can be built table by table and methods added later.

Printed (and written to OUT/suite.txt with OUT/suite.png): per table and budget each method's mean AUPRC over the
seeds, the best peer, and the paired difference default - best peer (mean over seeds, with its standard error
across seeds; "level" when within two standard errors), the same for adaptive - default; then each method's mean
rank across tables per budget (1 = best).
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import compare_peers  # noqa: E402
import real_tables  # noqa: E402

OURS = ("default", "adaptive")
PEERS = ("random", "uncertainty", "skal-qbc", "skal-coreset", "st-greedy-coreset")
METHODS = OURS + PEERS
BATCH = 10
ADAPTIVE_SETTINGS = {"adaptive": True}


def run_one(table, method, X, y, budget, batch, seed, adaptive_settings):
    """Rows of one run (one per batch: labels, auprc, positives_found)."""
    if method == "default":
        rows, _, _ = compare_peers.run_default(X, y, budget, batch, seed)
    elif method.startswith("adaptive"):
        rows, _, _ = compare_peers.run_default(X, y, budget, batch, seed, settings=adaptive_settings)
    else:
        rows, _, _ = compare_peers.run_peer(method, X, y, budget, batch, seed)
    return [{key: row[key] for key in ("labels", "auprc", "positives_found")} for row in rows]


def cached_run(out, table, method, X, y, budget, batch, seed, fresh, adaptive_settings):
    """The rows of (table, method, seed) up to ``budget`` labels (cut to the pool), from OUT/suite_runs when a run
    at least that long is kept, else run now and kept."""
    folder = os.path.join(out, "suite_runs", table, method.replace(":", "_"))
    path = os.path.join(folder, f"seed{seed}.json")
    pool_size = len(y) - int(np.ceil(compare_peers.simulate.TEST_SHARE * len(y)))  # train_test_split's rounding
    wanted = min(budget, pool_size)
    if not fresh and os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            kept = json.load(stream)
        if kept["rows"] and kept["rows"][-1]["labels"] >= wanted and kept.get("batch") == batch:
            return kept["rows"], True
    started = time.perf_counter()
    rows = run_one(table, method, X, y, budget, batch, seed, adaptive_settings)
    os.makedirs(folder, exist_ok=True)
    with open(path + ".part", "w", encoding="utf-8") as stream:
        json.dump({"table": table, "method": method, "seed": seed, "batch": batch, "rows": rows,
                   "settings": adaptive_settings if method.startswith("adaptive") else None,
                   "seconds": round(time.perf_counter() - started, 1),
                   "date": datetime.datetime.now().isoformat(timespec="seconds")}, stream)
    os.replace(path + ".part", path)
    return rows, False


def at(rows, budget):
    """The AUPRC and positives found at ``budget`` labels (None when the run stopped short: a pool too small)."""
    for row in rows:
        if row["labels"] == budget:
            return row
    return None


def figures(runs, budgets):
    """{table: {budget: {method: [auprc per seed]}}} of runs {table: {method: {seed: rows}}}, seeds in order;
    budgets a table's pool cannot reach are left out."""
    table_figures = {}
    for table, methods in runs.items():
        by_budget = {}
        for budget in budgets:
            cells = {}
            for method, seeds in methods.items():
                values = [at(rows, budget) for rows in seeds.values()]
                if values and all(value is not None for value in values):
                    cells[method] = [value["auprc"] for value in values]
            if cells:
                by_budget[budget] = cells
        table_figures[table] = by_budget
    return table_figures


def paired(a, b):
    """(mean of a - b, its standard error across seeds, word): "ahead"/"BEHIND" beyond two standard errors,
    else "level"."""
    difference = np.asarray(a) - np.asarray(b)
    mean = float(difference.mean())
    error = float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else float("nan")
    if mean == 0:
        word = "level"
    elif not np.isfinite(error):
        word = "ahead (1 seed)" if mean > 0 else "behind (1 seed)"
    elif abs(mean) <= 2 * error:
        word = "level"
    else:
        word = "ahead" if mean > 0 else "BEHIND"
    return mean, error, word


def ranks(table_figures, methods, budgets):
    """{budget: {method: mean rank across the tables that have every method at that budget}} (1 = best)."""
    result = {}
    for budget in budgets:
        collected = {method: [] for method in methods}
        for by_budget in table_figures.values():
            cells = by_budget.get(budget, {})
            if not all(method in cells for method in methods):
                continue
            means = np.array([np.mean(cells[method]) for method in methods])
            order = (-means).argsort().argsort() + 1.0
            for method, rank in zip(methods, order):
                collected[method].append(rank)
        if any(collected.values()):
            result[budget] = {method: float(np.mean(values)) for method, values in collected.items()}
    return result


def peers_of(methods):
    """The methods of ``methods`` that are peers (neither labeler's loops nor adaptive variants)."""
    return [method for method in methods if method not in OURS and not method.startswith("adaptive")]


def best_peer(figures_of, peers):
    """The peer whose figures (``figures_of(peer)``: AUPRC per seed) have the highest mean."""
    return max(peers, key=lambda peer: np.mean(figures_of(peer)))


def report(table_figures, sizes, methods, budgets, seeds, command):
    """The suite's text: header, one block per table, the mean ranks."""
    host = (f"{platform.platform()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
            f"load average {', '.join(f'{value:.1f}' for value in os.getloadavg())}")
    lines = [f"command: {command}", f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
             f"machine: {host}", f"seeds: {', '.join(map(str, seeds))}; batch {BATCH}; test AUPRC, mean over seeds",
             ""]
    peers = peers_of(methods)
    for table, by_budget in table_figures.items():
        rows, features, positives = sizes[table]
        lines.append(f"== {table}: {rows:,} rows, {features} features, {positives} positives "
                     f"({100 * positives / rows:.2f}%)")
        lines.append(f"{'budget':>7} " + " ".join(f"{method[:12]:>12}" for method in methods)
                     + "   best peer      default-best (se)       adaptive-default (se)")
        for budget, cells in by_budget.items():
            line = f"{budget:>7} " + " ".join(
                f"{np.mean(cells[method]):12.3f}" if method in cells else f"{'-':>12}" for method in methods)
            present = [peer for peer in peers if peer in cells]
            if "default" in cells and present:
                best = best_peer(cells.get, present)
                mean, error, word = paired(cells["default"], cells[best])
                line += f"   {best[:13]:<13} {mean:+.3f} ({error:.3f}) {word:<7}"
            else:
                line += " " * 40
            if "default" in cells and "adaptive" in cells:
                mean, error, word = paired(cells["adaptive"], cells["default"])
                line += f"   {mean:+.3f} ({error:.3f}) {word}"
            lines.append(line)
        lines.append("")
    mean_ranks = ranks(table_figures, methods, budgets)
    if mean_ranks:
        lines.append("mean rank across tables (1 = best; tables with every method at that budget)")
        lines.append(f"{'budget':>7} " + " ".join(f"{method[:12]:>12}" for method in methods))
        for budget, by_method in mean_ranks.items():
            lines.append(f"{budget:>7} " + " ".join(f"{by_method[method]:12.2f}" for method in methods))
    return "\n".join(lines) + "\n", mean_ranks


def plot_ranks(mean_ranks, methods, path, seeds):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(8, 4.8))
    budgets = list(mean_ranks)
    for method in methods:
        style = {"linewidth": 2.6, "color": "black"} if method == "default" else (
            {"linewidth": 2.2, "color": "tab:red"} if method == "adaptive" else {"linewidth": 1.2})
        axis.plot(budgets, [mean_ranks[budget][method] for budget in budgets], marker="o", label=method, **style)
    kind = "report" if all(seed < 10 for seed in seeds) else "development"  # seeds 0-9 report, 10 and up develop
    axis.set(xlabel="labels", ylabel="mean rank across tables (1 = best)", xscale="log",
             title=f"the suite, {kind} seeds {', '.join(map(str, seeds))}")
    axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # no "2×10²" between the budgets
    axis.set_xticks(budgets, [str(budget) for budget in budgets])
    axis.invert_yaxis()
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def first_positives(runs, methods):
    """Lines saying how soon each method showed the analyst a positive, per table: the median number of labels
    until the first one, and on how many seeds none came within the run (the first labels decide trust)."""
    lines = ["labels until the first positive: median over seeds (seeds with none in the run)"]
    lines.append(f"{'table':<14} " + " ".join(f"{method[:12]:>12}" for method in methods))
    for table, by_method in runs.items():
        cells = []
        for method in methods:
            firsts = [next((row["labels"] for row in rows if row["positives_found"] > 0), None)
                      for rows in by_method.get(method, {}).values()]
            found = [first for first in firsts if first is not None]
            median = f"{np.median(found):.0f}" if found else "-"
            cells.append(f"{median + f' ({len(firsts) - len(found)})':>12}")
        lines.append(f"{table[:14]:<14} " + " ".join(cells))
    return "\n".join(lines) + "\n"


def group_verdicts(table_figures, methods, seeds, size):
    """Lines checking the verdict's own noise: the seeds split into consecutive groups of ``size``, and per table
    and budget each group's paired difference of the default to the best peer of that group (chosen on the same
    seeds, as the report chooses it), then how many groups call it BEHIND."""
    peers = peers_of(methods)
    groups = [list(range(start, min(start + size, len(seeds)))) for start in range(0, len(seeds), size)]
    groups = [group for group in groups if len(group) == size]
    lines = [f"the verdict per group of {size} seeds (default against the group's own best peer)"]
    for table, by_budget in table_figures.items():
        for budget, cells in by_budget.items():
            present = [peer for peer in peers if peer in cells]
            if "default" not in cells or not present:
                continue
            parts, behind = [], 0
            for group in groups:
                pick = lambda method: [cells[method][position] for position in group]  # noqa: E731
                best = best_peer(pick, present)
                mean, error, word = paired(pick("default"), pick(best))
                behind += word == "BEHIND"
                parts.append(f"{seeds[group[0]]}-{seeds[group[-1]]} {mean:+.3f} ({error:.3f}) {word} vs {best}")
            lines.append(f"{table} @{budget}: BEHIND in {behind} of {len(groups)} groups")
            lines.extend(f"    {part}" for part in parts)
    return "\n".join(lines) + "\n"


def parse_ints(text, option):
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"{option}: a comma-separated list of whole numbers, got {text!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", default="all", help="all, or comma-separated names of bench/real_tables.py")
    parser.add_argument("--seeds", default="10,11,12", help="development seeds 10-12; report seeds 0-9")
    parser.add_argument("--budgets", default="100,250,500,1000")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="of " + ", ".join(METHODS) + "; adaptive:TAG runs the adaptive loop kept apart as TAG")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--adaptive-settings", default=json.dumps(ADAPTIVE_SETTINGS),
                        help="JSON of the loop's settings for the adaptive method")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--name", default="suite", help="OUT/NAME.txt and OUT/NAME.png")
    parser.add_argument("--fresh", action="store_true", help="rerun runs that are kept")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    parser.add_argument("--groups", type=int, default=0,
                        help="also split the seeds into groups of this many and print each group's verdict "
                             "(how often the report's rule calls a level loop behind); 0: not")
    args = parser.parse_args(argv)
    seeds = parse_ints(args.seeds, "--seeds")
    budgets = sorted(parse_ints(args.budgets, "--budgets"))
    methods = [method.strip() for method in args.methods.split(",") if method.strip()]
    unknown = [method for method in methods if method not in METHODS and not method.startswith("adaptive:")]
    if unknown:
        raise SystemExit(f"--methods: unknown method {unknown[0]!r} (known: {', '.join(METHODS)})")
    adaptive_settings = json.loads(args.adaptive_settings)
    tables = real_tables.suite_tables(args.tables)
    threadpool_limits(args.threads)
    warnings.filterwarnings("ignore")
    runs, sizes = {}, {}
    for table in tables:
        X, y = real_tables.load(table)
        sizes[table] = (len(y), X.shape[1], int(y.sum()))
        runs[table] = {}
        for method in methods:
            runs[table][method] = {}
            for seed in seeds:
                started = time.perf_counter()
                rows, kept = cached_run(args.out, table, method, X, y, max(budgets), args.batch, seed, args.fresh,
                                        adaptive_settings)
                runs[table][method][seed] = rows
                if not kept:
                    last = rows[-1]
                    print(f"{table} {method} seed {seed}: {last['labels']} labels, AUPRC {last['auprc']:.3f}, "
                          f"{last['positives_found']} found, {time.perf_counter() - started:.0f} s", flush=True)
    table_figures = figures(runs, budgets)
    command = "python bench/suite.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text, mean_ranks = report(table_figures, sizes, methods, budgets, seeds, command)
    text += "\n" + first_positives(runs, methods)
    if args.groups:
        text += "\n" + group_verdicts(table_figures, methods, seeds, args.groups)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.name}.txt"), "w", encoding="utf-8") as stream:
        stream.write(text)
    if mean_ranks:
        plot_ranks(mean_ranks, methods, os.path.join(args.out, f"{args.name}.png"), seeds)


if __name__ == "__main__":
    main()
