"""Benchmark: the time of one step of labeler's default loop (fit the model on the labels, then score the pool and
pick the next batch), as bench/compare_peers.py's TimedLearner measures it in the simulation, for this checkout or
another one, so that two versions of the loop can be timed side by side on the same machine.

    python bench/step_time.py --table creditcard --seeds 10,11,12 --budget 250
    python bench/step_time.py --code /tmp/before ...     # the same for a git worktree of another commit
    python bench/step_time.py --table caravan --committee 0.35   # with the committee's share of the mix

Prints the machine, then per seed and in all: the number of steps, the median and the total of the fit, the query
and their sum per step, and the test AUPRC at 100, 250, 500 and 1,000 labels (those within the budget) and at the
budget, so that two versions' figures can be paired seed by seed.
"""
import argparse
import os
import platform
import statistics
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", default=os.path.dirname(HERE),
                        help="the checkout whose loop is timed (its labeler/, models/ and bench/); default: this one")
    parser.add_argument("--table", default="creditcard", help="a table of bench/real_tables.py")
    parser.add_argument("--seeds", default="10,11,12", help="comma-separated split seeds (development: 10 and up)")
    parser.add_argument("--budget", type=int, default=250, help="labels per run")
    parser.add_argument("--batch", type=int, default=10, help="labels per step")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    parser.add_argument("--committee", type=float, default=None,
                        help="give the committee (models.committee) this share of the mix, taken from the uncertain "
                             "share; default: the settings' mix")
    args = parser.parse_args()

    code = os.path.abspath(args.code)
    sys.path[:0] = [code, os.path.join(code, "bench")]
    warnings.filterwarnings("ignore")
    from threadpoolctl import threadpool_limits

    import compare_peers
    import real_tables

    threadpool_limits(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {load:.2f}; code {code}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    from labeler.store.settings import DEFAULTS

    settings = None
    if args.committee is not None:
        mix = dict(DEFAULTS["mix"])
        mix["uncertain"] -= args.committee
        settings = {"mix": {**mix, "committee": args.committee}}
    X, y = real_tables.load(args.table)
    steps = []
    print(f"{args.table}: budget {args.budget}, batch {args.batch}, {args.threads} thread(s)"
          + (f", mix {settings['mix']}" if settings else ""))
    points = sorted({point for point in (100, 250, 500, 1000) if point < args.budget} | {args.budget})
    print(f"{'seed':>6} {'steps':>6} {'fit p50':>9} {'query p50':>10} {'step p50':>9} {'step total':>11}  AUPRC at "
          + " / ".join(str(point) for point in points))
    for seed in [int(seed) for seed in args.seeds.split(",")]:
        rows, fits, queries = compare_peers.run_default(X, y, args.budget, args.batch, seed, settings=settings)
        seeds_steps = [fit + query for fit, query in zip(fits, queries)]
        steps += seeds_steps
        print(f"{seed:>6} {len(seeds_steps):>6} {statistics.median(fits):>8.3f}s {statistics.median(queries):>9.3f}s "
              f"{statistics.median(seeds_steps):>8.3f}s {sum(seeds_steps):>10.1f}s  "
              + " / ".join(f"{row['auprc']:.3f}" for row in rows if row["labels"] in points))
    print(f"{'all':>6} {len(steps):>6} {'':>9} {'':>10} {statistics.median(steps):>8.3f}s {sum(steps):>10.1f}s")


if __name__ == "__main__":
    main()
