"""Benchmark: the Keras generative models (autoencoder, VAE, SGAN) on the full credit-card file.

    python bench/generative.py [--data ../shared/data/creditcard.csv.gz] [--labels 1000]
                               [--selections engine,capped,random] [--sgan-steps 4000] [--out bench/results]

Protocol of the simulation: a stratified 80/20 split with seed 0 (the 80% is the pool, the 20% the test set,
never trained on); at most ``--labels`` human labels from the pool, picked by one of three selections:

- engine: the product's loop (labeler.engine.ActiveLearner with its default settings, batches of ``--batch``,
  seed 0), run here with the ground truth as the oracle, as ``labeler.simulate.run`` does;
- capped: the pool's frauds in random order up to ``--fraud-cap``, plus random genuine rows;
- random: a stratified random sample of the pool (about 2 frauds in 1,000).

At ``--labels`` labels, the labels are split 75/25 (per class, at least one of each class on each side, seed 0)
into training and validation; the SGAN (labeled training rows + the rest of the pool unlabeled), a supervised
Keras MLP and the logistic-regression weak model are trained on the same training labels, their checkpoint (SGAN,
MLP) chosen on the validation labels, and measured on the test set: AUPRC, and F1 at the threshold with the best
F1 estimated over the whole pool at the pool's fraud rate (recall from the validation frauds, flagged rows counted
in the pool: models.sgan.population_f1_threshold; the SGAN serves this threshold), with F1 at the best-F1
threshold on the validation labels (fraud-rich, so too low a threshold) and on the test set itself (an upper
bound, not a result) for comparison. At 500 and ``--labels`` labels, the weak
model is trained on all labels with the raw features, with the autoencoder's latent features and anomaly score
added, and with VAE-generated frauds added to its training rows (the VAE fitted on the labeled frauds,
``sample_around`` them until the classes balance; synthetic rows are never labels). Prints every figure and the
machine; writes generative.json and generative.png (the SGAN validation curves, served checkpoint marked).
"""
import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import average_precision_score, f1_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402

from models import weak  # noqa: E402
from models.autoencoder import Autoencoder  # noqa: E402
from models.keras_common import MinMaxScaling, seed_everything, training_device  # noqa: E402
from models.sgan import SGAN, f1_threshold, holdout_split, population_f1_threshold  # noqa: E402
from models.vae import VAE  # noqa: E402

SEED = 0
LABEL_LEVELS = (500, 1000)


def load(path):
    frame = pd.read_csv(path)
    y = frame.pop("Class").to_numpy(dtype=np.int64)
    return frame.drop(columns=["Time"]).to_numpy(dtype=np.float32), y


def engine_order(X_pool, y_pool, budget, batch):
    """Pool indices in the order the product's loop (default settings, seed 0) asks for their labels."""
    from labeler.engine import DEFAULT_SETTINGS, ActiveLearner

    learner = ActiveLearner(X_pool, np.arange(len(y_pool)), dict(DEFAULT_SETTINGS), SEED)
    labeled = np.zeros(len(y_pool), dtype=bool)
    order, p_pool, pseudo = [], None, None
    while len(order) < budget:
        picks = [index for index, _ in learner.pick(p_pool, np.flatnonzero(~labeled), min(batch, budget - len(order)))]
        labeled[picks] = True
        order.extend(picks)
        indices = np.asarray(order, dtype=np.int64)
        if len(np.unique(y_pool[indices])) < 2:
            p_pool = None
            continue
        model = learner.train(indices, y_pool[indices], pseudo).model
        p_pool = learner.score(model)
        pseudo = learner.pseudo(p_pool, np.flatnonzero(~labeled))
    return np.asarray(order, dtype=np.int64)


def capped_order(y_pool, budget, cap):
    """Frauds of the pool (random, at most ``cap``) and random genuine rows, shuffled together."""
    rng = np.random.default_rng(SEED)
    frauds = rng.permutation(np.flatnonzero(y_pool == 1))[:min(cap, budget)]
    genuine = rng.choice(np.flatnonzero(y_pool == 0), budget - len(frauds), replace=False)
    return rng.permutation(np.concatenate([frauds, genuine]))


def random_order(y_pool, budget):
    """A stratified random sample of the pool, shuffled (its prefixes are random samples too)."""
    picked, _ = train_test_split(np.arange(len(y_pool)), train_size=budget, stratify=y_pool, random_state=SEED)
    return np.random.default_rng(SEED).permutation(picked)


def test_figures(y_test, scores, y_val, val_scores, population_scores, positive_rate):
    """Test AUPRC and F1 at three thresholds: best F1 on validation, best F1 estimated on the population at the
    pool's fraud rate (the served one), and the best on the test set itself (an upper bound, not a result)."""
    val_threshold, _ = f1_threshold(y_val, val_scores)
    population_threshold, _ = population_f1_threshold(val_scores[y_val == 1], population_scores, positive_rate)

    def f1_at(threshold):
        return round(float(f1_score(y_test, scores >= threshold, zero_division=0)), 4)

    return {"auprc": round(float(average_precision_score(y_test, scores)), 4),
            "f1": f1_at(population_threshold), "f1_validation_threshold": f1_at(val_threshold),
            "f1_best_test_threshold": round(f1_threshold(y_test, scores)[1], 4),
            "threshold": population_threshold, "validation_threshold": val_threshold}


def train_mlp(X_train, y_train, X_val, y_val, scaling_rows, epochs, eval_every):
    """A supervised Keras MLP with the SGAN discriminator's layers and a sigmoid head; checkpoint by validation AP."""
    seed_everything(SEED)
    scaling = MinMaxScaling.fitted(scaling_rows, low=-1.0, high=1.0)
    train_rows, val_rows = scaling.numpy(X_train), scaling.numpy(X_val)
    model = keras.Sequential([
        keras.Input((X_train.shape[1],)),
        keras.layers.Dense(31), keras.layers.LeakyReLU(negative_slope=0.2),
        keras.layers.BatchNormalization(momentum=0.8), keras.layers.Dropout(0.25),
        keras.layers.Dense(16), keras.layers.LeakyReLU(negative_slope=0.2),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    counts = np.bincount(y_train, minlength=2)
    class_weight = {k: len(y_train) / (2.0 * counts[k]) for k in (0, 1)}
    best_score, best_weights, best_epoch = -1.0, None, 0
    for epoch in range(eval_every, epochs + 1, eval_every):
        model.fit(train_rows, y_train, epochs=eval_every, batch_size=64, class_weight=class_weight, verbose=0)
        score = average_precision_score(y_val, model.predict(val_rows, verbose=0)[:, 0])
        if score > best_score:
            best_score, best_weights, best_epoch = score, model.get_weights(), epoch
    model.set_weights(best_weights)
    return lambda X: model.predict(scaling.numpy(X), batch_size=8192, verbose=0)[:, 0], best_epoch, best_score


def weak_scores(X_train, y_train, X_test):
    return weak.fit(weak.LOGISTIC, X_train, y_train, seed=SEED).raw(X_test)


def compare_at_full_labels(name, order, X_pool, y_pool, X_test, y_test, args):
    """SGAN, MLP and weak model on the same 75% of the labels, selected on the other 25%; test figures."""
    labeled = order[:args.labels]
    train_at, val_at = holdout_split(y_pool[labeled], 0.25, 2, SEED)
    train, val = labeled[train_at], labeled[val_at]
    unlabeled = np.setdiff1d(np.arange(len(y_pool)), labeled)
    positive_rate = float(y_pool.mean())
    X_train, y_train, X_val, y_val = X_pool[train], y_pool[train], X_pool[val], y_pool[val]
    result = {"train_labels": len(train), "train_frauds": int(y_train.sum()), "validation_labels": len(val),
              "validation_frauds": int(y_val.sum()), "unlabeled": len(unlabeled)}

    started = time.perf_counter()
    sgan = SGAN(seed=SEED).fit(X_train, y_train, X_pool[unlabeled], X_val=X_val, y_val=y_val,
                               steps=args.sgan_steps, eval_every=args.sgan_eval_every, patience=args.sgan_patience,
                               positive_rate=positive_rate)
    seconds = time.perf_counter() - started
    scores = sgan.predict_proba(X_test)[:, 1]
    served = sgan.history[sgan.meta["best_index"]]
    figures = test_figures(y_test, scores, y_val, sgan.predict_proba(X_val)[:, 1],
                           sgan.predict_proba(X_pool)[:, 1], positive_rate)
    assert figures["threshold"] == sgan.threshold  # the bench's population threshold is the one the SGAN serves
    result["sgan"] = {**figures, "train_seconds": round(seconds, 1),
                      "device": sgan.device, "served_step": sgan.meta["best_step"],
                      "served_validation_ap": round(served["score"], 4), "served_validation_f1": round(served["f1"], 4),
                      "served_collapsed": served["collapsed"],
                      "served_predicted_frauds_on_test": int((scores >= sgan.threshold).sum()),
                      "stop_reason": sgan.meta["stop_reason"], "curve": sgan.history}

    started = time.perf_counter()
    mlp, best_epoch, best_val = train_mlp(X_train, y_train, X_val, y_val, np.concatenate([X_train, X_pool[unlabeled]]),
                                          args.mlp_epochs, args.mlp_eval_every)
    seconds = time.perf_counter() - started
    result["mlp"] = {**test_figures(y_test, mlp(X_test), y_val, mlp(X_val), mlp(X_pool), positive_rate),
                     "train_seconds": round(seconds, 1),
                     "served_epoch": best_epoch, "served_validation_ap": round(float(best_val), 4)}

    started = time.perf_counter()
    model = weak.fit(weak.LOGISTIC, X_train, y_train, seed=SEED)
    seconds = time.perf_counter() - started
    result["weak"] = {**test_figures(y_test, model.raw(X_test), y_val, model.raw(X_val), model.raw(X_pool),
                                     positive_rate), "train_seconds": round(seconds, 2)}
    return result


def feature_experiments(order, X_pool, y_pool, X_test, y_test, autoencoder, args):
    """Test AUPRC of the weak model at each label level: raw, + AE latent features, + VAE-balanced frauds."""
    latent_pool = np.column_stack([autoencoder.encode(X_pool), autoencoder.anomaly_score(X_pool)])
    latent_test = np.column_stack([autoencoder.encode(X_test), autoencoder.anomaly_score(X_test)])
    rows = {}
    for level in LABEL_LEVELS:
        if level > len(order):
            continue
        labeled = order[:level]
        X_l, y_l = X_pool[labeled], y_pool[labeled]
        row = {"frauds": int(y_l.sum()),
               "raw": round(float(average_precision_score(y_test, weak_scores(X_l, y_l, X_test))), 4),
               "latent": round(float(average_precision_score(y_test, weak_scores(
                   np.column_stack([X_l, latent_pool[labeled]]), y_l, np.column_stack([X_test, latent_test])))), 4)}
        frauds = X_l[y_l == 1]
        started = time.perf_counter()
        vae = VAE(seed=SEED).fit(frauds, epochs=args.vae_fraud_epochs, batch_size=16)
        synthetic = vae.sample_around(frauds, int((y_l == 0).sum() - len(frauds)), seed=SEED)
        row["vae_fit_seconds"] = round(time.perf_counter() - started, 1)
        row["synthetic_frauds"] = len(synthetic)
        balanced_X = np.concatenate([X_l, synthetic])
        balanced_y = np.concatenate([y_l, np.ones(len(synthetic), dtype=np.int64)])
        row["vae_balanced"] = round(float(average_precision_score(
            y_test, weak_scores(balanced_X, balanced_y, X_test))), 4)
        rows[level] = row
    return rows


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    figure, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for axis, name in zip(axes[0], names):
        sgan = results[name]["sgan"]
        steps = [entry["step"] for entry in sgan["curve"]]
        axis.plot(steps, [entry["score"] for entry in sgan["curve"]], label="validation AP")
        axis.plot(steps, [entry["f1"] for entry in sgan["curve"]], label="validation F1 (argmax)")
        collapsed = [entry["step"] for entry in sgan["curve"] if entry["collapsed"]]
        if collapsed:
            axis.scatter(collapsed, [0] * len(collapsed), marker="x", color="red", label="collapsed")
        axis.axvline(sgan["served_step"], color="black", linestyle="--",
                     label=f"served (step {sgan['served_step']})")
        axis.set_title(f"SGAN, {name} labels: test F1 {sgan['f1']:.3f}, AUPRC {sgan['auprc']:.3f}")
        axis.set_xlabel("training step")
        axis.set_ylim(-0.05, 1.05)
        axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "creditcard.csv.gz"))
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--selections", default="engine,capped,random")
    parser.add_argument("--batch", type=int, default=10, help="Batch size of the engine selection.")
    parser.add_argument("--fraud-cap", type=int, default=250, help="Most frauds in the capped selection.")
    parser.add_argument("--ae-epochs", type=int, default=5)
    parser.add_argument("--vae-epochs", type=int, default=5)
    parser.add_argument("--vae-fraud-epochs", type=int, default=100)
    parser.add_argument("--sgan-steps", type=int, default=4000)
    parser.add_argument("--sgan-eval-every", type=int, default=100)
    parser.add_argument("--sgan-patience", type=int, default=15)
    parser.add_argument("--mlp-epochs", type=int, default=200)
    parser.add_argument("--mlp-eval-every", type=int, default=10)
    parser.add_argument("--reuse-orders", default=None,
                        help="A generative.json from an earlier run: take each selection's label order from it "
                             "instead of picking again (the engine's loop takes minutes).")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args()

    machine = (f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
               f"python {platform.python_version()}, keras {keras.__version__} ({keras.backend.backend()}), "
               f"training device {training_device()}")
    print("machine:", machine)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other jobs share these cores)", flush=True)
    X, y = load(args.data)
    pool, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=SEED)
    X_pool, y_pool, X_test, y_test = X[pool], y[pool], X[test], y[test]
    print(f"data: {len(y):,} rows, 29 features (Time dropped); pool {len(pool):,} ({int(y_pool.sum())} frauds), "
          f"test {len(test):,} ({int(y_test.sum())} frauds)", flush=True)

    unsupervised = {}
    started = time.perf_counter()
    autoencoder = Autoencoder(seed=SEED).fit(X_pool, epochs=args.ae_epochs, batch_size=256)
    unsupervised["autoencoder"] = {
        "train_seconds": round(time.perf_counter() - started, 1), "epochs": args.ae_epochs,
        "rows": len(X_pool), "test_auprc_of_anomaly_score": round(float(average_precision_score(
            y_test, autoencoder.anomaly_score(X_test))), 4)}
    started = time.perf_counter()
    vae = VAE(seed=SEED).fit(X_pool, epochs=args.vae_epochs, batch_size=256)
    unsupervised["vae"] = {
        "train_seconds": round(time.perf_counter() - started, 1), "epochs": args.vae_epochs, "rows": len(X_pool),
        "test_auprc_of_reconstruction_error": round(float(average_precision_score(
            y_test, vae.reconstruction_error(X_test).mean(axis=1))), 4), "loss_terms_test": vae.loss_terms(X_test)}
    for name, row in unsupervised.items():
        print(f"{name} on the pool (unsupervised): {row}", flush=True)

    earlier = {}
    if args.reuse_orders:
        with open(args.reuse_orders) as handle:
            earlier = json.load(handle)["selections"]
    results = {}
    for name in args.selections.split(","):
        started = time.perf_counter()
        if name in earlier:
            order = np.asarray(earlier[name]["order"], dtype=np.int64)[:args.labels]
        elif name == "engine":
            order = engine_order(X_pool, y_pool, args.labels, args.batch)
        elif name == "capped":
            order = capped_order(y_pool, args.labels, args.fraud_cap)
        elif name == "random":
            order = random_order(y_pool, args.labels)
        else:
            parser.error(f"unknown selection {name!r} (known: engine, capped, random)")
        selection_seconds = time.perf_counter() - started
        print(f"\nselection {name}: {len(order)} labels, {int(y_pool[order].sum())} frauds "
              f"({'taken from ' + args.reuse_orders if name in earlier else f'picked in {selection_seconds:.0f} s'})",
              flush=True)
        result = compare_at_full_labels(name, order, X_pool, y_pool, X_test, y_test, args)
        result["selection_seconds"] = (earlier[name]["selection_seconds"] if name in earlier
                                       else round(selection_seconds, 1))
        result["order"] = order.tolist()
        result["label_levels"] = feature_experiments(order, X_pool, y_pool, X_test, y_test, autoencoder, args)
        results[name] = result
        print(f"  labels for training/validation: {result['train_labels']} ({result['train_frauds']} frauds) / "
              f"{result['validation_labels']} ({result['validation_frauds']} frauds); unlabeled pool "
              f"{result['unlabeled']:,}")
        print(f"  {'model':<6} {'test F1':>8} {'AUPRC':>7} {'F1@val':>7} {'F1@best':>8} {'train s':>8}  served")
        for model in ("sgan", "mlp", "weak"):
            row = result[model]
            served = (f"step {row['served_step']} of {row['curve'][-1]['step']} ({row['stop_reason']}), "
                      f"val AP {row['served_validation_ap']}, collapsed {row['served_collapsed']}"
                      if model == "sgan" else f"epoch {row['served_epoch']}" if model == "mlp" else "")
            print(f"  {model:<6} {row['f1']:>8.3f} {row['auprc']:>7.3f} {row['f1_validation_threshold']:>7.3f} "
                  f"{row['f1_best_test_threshold']:>8.3f} {row['train_seconds']:>8.1f}  {served}")
        curve = " ".join(f"{entry['step']}:{entry['score']:.3f}{'C' if entry['collapsed'] else ''}"
                         for entry in result["sgan"]["curve"])
        print(f"  SGAN validation AP by step (C = collapsed; served step {result['sgan']['served_step']}): {curve}")
        for level, row in result["label_levels"].items():
            print(f"  weak model test AUPRC at {level} labels ({row['frauds']} frauds): raw {row['raw']:.4f}, "
                  f"+AE latent {row['latent']:.4f}, +VAE balancing {row['vae_balanced']:.4f} "
                  f"({row['synthetic_frauds']} synthetic frauds, VAE fit {row['vae_fit_seconds']} s)", flush=True)

    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    os.makedirs(args.out, exist_ok=True)
    report = {"machine": machine, "data": os.path.basename(args.data), "split": "stratified 80/20, seed 0",
              "labels": args.labels, "args": vars(args), "unsupervised": unsupervised, "selections": results}
    json_path = os.path.join(args.out, "generative.json")
    with open(json_path, "w") as handle:
        json.dump(report, handle, indent=1, default=float)
    png_path = os.path.join(args.out, "generative.png")
    plot(results, png_path)
    print("wrote", json_path, png_path)


if __name__ == "__main__":
    main()
