"""Issue 20, what the default loop's picks and models did on a table (development seeds only):

    nice -n 5 .venv/bin/python bench/loop_diagnostics.py --tables wage_high,caravan --seeds 10-89 --budget 100

Three reports, over the runs of bench/compare_peers.run_default (the product's loop) on each seed's stratified split:

- **hits**: per strategy, how many of its picks were positives, in the cold phase (before the labels held both
  classes) and after; the pool's positive rate beside them.
- **blend** (``--blend``): at the first training that served the blend of logistic and boosted (or its logistic
  part), and at 100 / 150 / 250 labels, which of the two ranked the test set better (average precision), what
  3-fold cross-validation on the labels would have chosen, and what the loop served (models.prequential).
- **suggestions** (``--suggestions``): how often the suggestion the analyst would see (the served model's
  P(positive) at 0.5, as the queue writes it) was right on the items picked with a model, for the loop as shipped
  and the loop before the served model was set apart from the one that picks (bench/early_loop.py's blendfirst);
  the same on the picks the blend made while its logistic part served, and on the positives among the picks.
"""
import argparse
import collections
import contextlib
import os
import sys
import warnings

import numpy as np
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH))
sys.path.insert(0, BENCH)

import compare_peers  # noqa: E402
import real_tables  # noqa: E402
import suite  # noqa: E402
from early_loop import blend_first, patched, seeds_of  # noqa: E402
from labeler.worker import simulate  # noqa: E402
from models import learner as learner_module, weak  # noqa: E402

BLEND_POINTS = (100, 150, 250)


def hits_by_strategy(X, y, seeds, budget):
    """{phase: {strategy: [picks, positives]}} over the runs, phase "cold" (no model yet) or "model"."""
    counts = {"cold": collections.defaultdict(lambda: [0, 0]), "model": collections.defaultdict(lambda: [0, 0])}
    truth = {}
    shipped = learner_module.ActiveLearner.pick

    def pick(self, p_positive, unlabeled, size, labeled_positives=None):
        picks = shipped(self, p_positive, unlabeled, size, labeled_positives)
        phase = counts["cold" if p_positive is None else "model"]
        for index, strategy in picks:
            phase[strategy][0] += 1
            phase[strategy][1] += int(truth["pool"][index])
        return picks

    with patched(learner_module.ActiveLearner, "pick", pick):
        for seed in seeds:
            pool, _ = simulate.split(y, seed)
            truth["pool"] = y[pool]
            compare_peers.run_default(X, y, budget, suite.BATCH, seed)
    return counts


def blend_choices(X, y, seeds, budget):
    """[(point, test prefers the blend, cross-validation prefers it, the loop served it, test AP blend - part)]
    at each seed's first blend and at BLEND_POINTS labels (point "first" or the label count)."""
    rows = []
    state = {}
    shipped = learner_module.ActiveLearner.train

    def train(self, labeled, labels, pseudo=None):
        served = shipped(self, labeled, labels, pseudo)
        if served.kind not in (weak.BLEND, weak.LOGISTIC_PART):
            return served
        point = len(labeled) if state["seen"] and len(labeled) in BLEND_POINTS else None
        point = point if state["seen"] else "first"
        state["seen"] = True
        if point is None:
            return served
        features = self.pool_features()
        X_labeled, y_labeled = features[labeled], np.asarray(labels)
        blend_oof, part_oof = np.zeros(len(y_labeled)), np.zeros(len(y_labeled))
        for train_rows, test_rows in StratifiedKFold(3, shuffle=True, random_state=0).split(X_labeled, y_labeled):
            model = weak.fit(weak.BLEND, X_labeled[train_rows], y_labeled[train_rows], seed=0)
            blend_oof[test_rows] = model.raw(X_labeled[test_rows])
            part_oof[test_rows] = weak.WeakModel(weak.LOGISTIC_PART, model.estimators).raw(X_labeled[test_rows])
        test_rows = self.features_of(state["X_test"])
        blend_ap = average_precision_score(state["y_test"], weak.WeakModel(weak.BLEND, served.model.estimators)
                                           .raw(test_rows))
        part_ap = average_precision_score(state["y_test"], weak.WeakModel(weak.LOGISTIC_PART,
                                                                          served.model.estimators).raw(test_rows))
        cv_blend = average_precision_score(y_labeled, blend_oof) > average_precision_score(y_labeled, part_oof)
        rows.append((point, blend_ap > part_ap, cv_blend, served.kind == weak.BLEND, blend_ap - part_ap))
        return served

    with patched(learner_module.ActiveLearner, "train", train):
        for seed in seeds:
            _, test = simulate.split(y, seed)
            state.update(seen=False, X_test=X[test], y_test=y[test])
            compare_peers.run_default(X, y, budget, suite.BATCH, seed)
    return rows


def suggestion_hits(X, y, seeds, budget, variant):
    """Over the runs under ``variant`` (a context manager patching models/): [picks made with a model, suggestions
    right, picks while the queue followed the other model of the pair, suggestions right among them, positives
    picked, positives suggested as positive]."""
    counts = np.zeros(6, dtype=np.int64)
    state = {}
    shipped_train, shipped_pick = learner_module.ActiveLearner.train, learner_module.ActiveLearner.pick

    def train(self, labeled, labels, pseudo=None):
        state["served"] = shipped_train(self, labeled, labels, pseudo)
        return state["served"]

    def pick(self, p_positive, unlabeled, size, labeled_positives=None):
        picks = shipped_pick(self, p_positive, unlabeled, size, labeled_positives)
        if p_positive is not None and picks:
            served = state["served"]
            index = np.array([item for item, _ in picks], dtype=np.int64)
            truth = state["pool"][index].astype(bool)
            right = (served.model.predict(self.pool_features()[index]) >= 0.5) == truth
            other = len(index) if served.queue_from_other else 0
            counts[:] += [len(index), right.sum(), other, right.sum() if other else 0, truth.sum(),
                          (right & truth).sum()]
        return picks

    with variant, patched(learner_module.ActiveLearner, "train", train), \
            patched(learner_module.ActiveLearner, "pick", pick):
        for seed in seeds:
            pool, _ = simulate.split(y, seed)
            state["pool"] = y[pool]
            compare_peers.run_default(X, y, budget, suite.BATCH, seed)
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="wage_high", help="comma-separated tables of bench/real_tables.py "
                                                              "(not transactions with --blend: its test rows need "
                                                              "their card histories)")
    parser.add_argument("--seeds", default="10-19", help="FIRST-LAST or comma-separated seeds (development only)")
    parser.add_argument("--budget", type=int, default=100, help="labels per run")
    parser.add_argument("--blend", action="store_true", help="the blend report instead of the hits")
    parser.add_argument("--suggestions", action="store_true", help="the suggestions report instead of the hits")
    args = parser.parse_args()
    threadpool_limits(1)  # one BLAS thread, as the suite's runs
    warnings.filterwarnings("ignore")
    seeds = seeds_of(args.seeds)
    for table in args.tables.split(","):
        X, y = real_tables.load(table)
        print(f"{table}: seeds {args.seeds}, {args.budget} labels, positive rate {y.mean():.4f}")
        if args.suggestions:
            for name, variant in (("as shipped", contextlib.nullcontext()), ("blendfirst", blend_first())):
                picks, right, other, right_other, positives, found = suggestion_hits(X, y, seeds, args.budget, variant)
                print(f"  {name:<10} picks with a model {picks:>6}  suggestion right {right / picks:.3f}  "
                      f"picks the blend made for its logistic part {other:>5}"
                      + (f" (right {right_other / other:.3f})" if other else "")
                      + f"  positives picked {positives:>5}, suggested positive {found / max(positives, 1):.3f}")
            continue
        if not args.blend:
            for phase, counts in hits_by_strategy(X, y, seeds, args.budget).items():
                for strategy, (picks, positives) in sorted(counts.items()):
                    print(f"  {phase:<5} {strategy:<13} picks {picks:>5}  positives {positives:>4}  "
                          f"rate {positives / picks:.4f}")
            continue
        rows = blend_choices(X, y, seeds, args.budget)
        for point in ["first", *BLEND_POINTS]:
            chosen = np.array([row[1:] for row in rows if row[0] == point], dtype=np.float64)
            if not len(chosen):
                continue
            print(f"  {str(point):<5} n={len(chosen):<3} test prefers the blend {chosen[:, 0].mean():.2f}  "
                  f"cross-validation does {chosen[:, 1].mean():.2f} (agrees {np.mean(chosen[:, 1] == chosen[:, 0]):.2f})"
                  f"  the loop served it {chosen[:, 2].mean():.2f} (agrees {np.mean(chosen[:, 2] == chosen[:, 0]):.2f})"
                  f"  test AP blend - part {chosen[:, 3].mean():+.3f}")


if __name__ == "__main__":
    main()
