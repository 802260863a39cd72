"""What the labeling screen shows, as plain data for the templates: the item panel (headline values, feature
bars against the pool, the autoencoder's reconstruction beside the actual values, the suggestion and its
alternatives, similar labeled items) and the polled status line. Reads what the worker stored; computes nothing
heavier than a few numpy operations on one item.
"""
import math
import time

import numpy as np

from labeler.data.datasets import label_counts
from labeler.data.model_versions import holdout_figure
from labeler.labeling.history import card_history, merchant_history, readable_amount, readable_time
from labeler.labeling.image_view import image_view
from labeler.labeling.similar import similar_labeled
from labeler.store import artifacts
from labeler.store.db import Item, Job, ModelVersion, dataset_key
from labeler.store.prepared import Prepared, slot
from labeler.store.serving import serving_scores
from labeler.store.settings import labeling_settings
from labeler.worker import jobs
from models.names import STRATEGY_WHY, STRATEGY_WHY_BLEND_PICKED, WIDEN_AFTER

BAR_LIMIT = 20.0  # |z| that fills half the chart; the scale is logarithmic so that 2 and 20 both read
MARKED = 3  # how many of the most unusual features are marked
MARK_FROM = 2.0  # ... provided they lie at least this many standard deviations out
ROW_HEIGHT = 16
NAME_WIDTH = 80  # the least room for the feature names; long names (one-hot, history) get up to MAX_NAME_WIDTH
MAX_NAME_WIDTH = 300
NAME_CHAR_WIDTH = 6.6  # px per character of the charts' 11px labels
CHART_WIDTH = 300
TEXT_WIDTH = 60
RECON_WIDTH = 200  # the reconstruction chart: 0..1 in scaled units
RECON_MARK_FROM = 10.0  # a feature is marked when its error is at least this many times the pool's mean error

SIMILAR_COUNT = 5
_statistics = {}  # dataset_key -> (monotonic time read, (mean, std))
HEADLINE_NAMES = ("amount", "time")
STATS_CHECK_SECONDS = 10.0
STATUS_JOB_KINDS = (jobs.RETRAIN, jobs.AUTOENCODER, jobs.SEQUENCES)  # the status line shows these (refills are brief)


def feature_bars(vector, stats, names):
    """One dict per feature: name, value, z-score, bar geometry (x, width in the SVG) and whether it is marked.

    ``stats`` is (mean, std) of the pool's features, ``names`` the feature columns. Bars grow from the centre line, right
    for values above the pool mean, left below, on a log scale.
    """
    mean, std = stats
    z = (np.asarray(vector, dtype=np.float64) - mean) / std
    half = CHART_WIDTH / 2
    centre = name_width(names) + half
    order = np.argsort(-np.abs(z), kind="stable")
    marked = {int(i) for i in order[:MARKED] if abs(z[i]) >= MARK_FROM}
    bars = []
    for index, name in enumerate(names):
        score = float(z[index])
        length = half * min(1.0, math.log1p(abs(score)) / math.log1p(BAR_LIMIT))
        bars.append({
            "name": name,
            "value": float(vector[index]),
            "z": score,
            "x": centre - length if score < 0 else centre,
            "width": length,
            "y": index * ROW_HEIGHT,
            "marked": index in marked,
        })
    return bars


def name_width(names):
    """The room for the longest feature name, between NAME_WIDTH and MAX_NAME_WIDTH pixels."""
    longest = max((len(str(name)) for name in names), default=0)
    return int(min(MAX_NAME_WIDTH, max(NAME_WIDTH, round(longest * NAME_CHAR_WIDTH) + 8)))


def chart_geometry(count, names=()):
    """Sizes the bar chart template needs: total width and height, centre line, tick positions."""
    half = CHART_WIDTH / 2
    left = name_width(names)
    centre = left + half
    ticks = []
    for value in (1, 3, 10):
        offset = half * math.log1p(value) / math.log1p(BAR_LIMIT)
        ticks += [(centre - offset, -value), (centre + offset, value)]
    return {
        "width": left + CHART_WIDTH + TEXT_WIDTH,
        "height": count * ROW_HEIGHT + 14,
        "centre": centre,
        "ticks": ticks,
        "text_x": left + CHART_WIDTH + 6,
        "row_height": ROW_HEIGHT,
    }


def reconstruction_bars(dataset, item_id, vector, names):
    """The item's actual values beside the autoencoder's reconstruction, per feature, from the stored outputs:
    a dict with ``rows`` (one dict per feature: name, actual and reconstruction in the features' units, both
    scaled to 0..1 as the autoencoder sees them, bar widths, the squared error, its ratio to the pool's mean
    error for that feature, whether it is marked), ``chart`` (sizes) and ``created_at``; None when the dataset
    has no stored outputs holding the item (the screen then shows no reconstruction).

    At most MARKED features are marked: those with the largest error ratio, provided it is at least
    RECON_MARK_FROM. Nothing here touches a model.
    """
    stored = artifacts.reconstruction_of(dataset, item_id)
    if stored is None:
        return None
    vector = np.asarray(vector, dtype=np.float64)
    actual = artifacts.scaled(vector, stored["minimum"], stored["maximum"])
    rebuilt = artifacts.scaled(stored["reconstruction"], stored["minimum"], stored["maximum"])
    error = np.square(actual - rebuilt)
    ratio = error / np.maximum(stored["feature_error"], 1e-12)
    order = np.argsort(-ratio, kind="stable")
    marked = {int(i) for i in order[:MARKED] if ratio[i] >= RECON_MARK_FROM}
    rows = []
    for index, name in enumerate(names):
        rows.append({
            "name": name,
            "value": float(vector[index]),
            "reconstruction": float(stored["reconstruction"][index]),
            "scaled": float(actual[index]),
            "scaled_reconstruction": float(rebuilt[index]),
            "width": RECON_WIDTH * float(np.clip(actual[index], 0.0, 1.0)),
            "reconstruction_width": RECON_WIDTH * float(np.clip(rebuilt[index], 0.0, 1.0)),
            "error": float(error[index]),
            "ratio": float(ratio[index]),
            "y": index * ROW_HEIGHT,
            "marked": index in marked,
        })
    left = name_width(names)
    chart = {"width": left + RECON_WIDTH + TEXT_WIDTH, "height": len(rows) * ROW_HEIGHT + 14,
             "left": left, "right": left + RECON_WIDTH, "text_x": left + RECON_WIDTH + 6}
    return {"rows": rows, "chart": chart, "created_at": stored["created_at"]}


def label_keys(labels):
    """{label: key} for the label buttons, the same on every screen of a dataset (the reject panel too): a
    label set of single digits (the digits 0-9) is typed as itself; otherwise the keys 1-9 and then 0 follow the
    label set's order, and labels beyond the tenth have no key."""
    if all(len(label) == 1 and label.isdigit() for label in labels) and len(set(labels)) == len(labels):
        return {label: label for label in labels}
    return {label: str((position + 1) % 10) for position, label in enumerate(labels[:10])}


def dataset_status(dataset):
    """Totals, the serving model and its holdout figure (labeler.data.model_versions.holdout_figure; never the
    cross-validated score), the latest retrain or autoencoder job, why the newest model lost the gate (if it
    did) and which file is unusable (if one is), of ``dataset``, for the polled header component."""
    counts = label_counts(dataset)
    model = (ModelVersion.select().where((ModelVersion.dataset == dataset) & ModelVersion.serving)
             .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()).first())
    job = (Job.select().where((Job.dataset == dataset) & Job.kind.in_(STATUS_JOB_KINDS))
           .order_by(Job.created_at.desc(), Job.id.desc()).first())
    newest = (ModelVersion.select().where(ModelVersion.dataset == dataset).order_by(ModelVersion.id.desc()).first())
    lost = newest is not None and not newest.serving and (newest.gate or {}).get("passed") is False
    labeled = sum(counts.values())
    frauds = sum(counts.get(label, 0) for label in dataset.positive_labels)
    return {"labeled": labeled, "frauds": frauds, "search": search_notice(dataset, labeled, frauds), "model": model,
            "holdout": holdout_figure(model, dataset) if model is not None else None, "job": job,
            "gate": newest.gate.get("line") if lost else None,  # why the newest model does not serve
            "notice": serving_scores(dataset).notice}  # an unusable scores file and what serves instead


def search_notice(dataset, labeled, positives):
    """What the status line says once WIDEN_AFTER labels came without a positive (None before, after the first
    positive, or for a label set with no positive class), and for two labels that the cold start's search
    widens (models.learner.ActiveLearner.pick)."""
    if not dataset.positive_labels or positives or labeled < WIDEN_AFTER:
        return None
    found = f"no item labeled {dataset.positive_name} among the first {labeled:,} labels"
    if len(dataset.labels) == 2:
        return f"{found}: the search widens beyond the anomaly score (picks marked “wider search”)"
    return found


def pool_statistics(dataset, now=None):
    """(mean, std) of ``dataset``'s features as the worker stored them, None until its first refill did. Once
    found they are read again at most every STATS_CHECK_SECONDS per dataset and process (they change only when
    the pool grows)."""
    now = time.monotonic() if now is None else now
    key = dataset_key(dataset)
    cached = _statistics.get(key)
    if cached is not None and now - cached[0] <= STATS_CHECK_SECONDS:
        return cached[1]
    stored = artifacts.feature_stats(dataset)
    if stored is None:
        _statistics.pop(key, None)
        return None
    _statistics[key] = (now, stored[:2])
    return stored[:2]


def headline_columns(dataset):
    """Columns shown first: the display-only ones and any feature called Amount or Time, in file order."""
    features = set(dataset.feature_columns)
    return [c for c in dataset.columns if c not in features or c.lower() in HEADLINE_NAMES]


def _readable(dataset, item, column, value):
    """A headline value as an analyst reads it: the time column as a UTC date and time, the amount with two
    decimals."""
    roles = dataset.roles or {}
    if column == roles.get("time") and item.event_time is not None:
        return readable_time(item.event_time)
    if column == roles.get("amount"):
        return readable_amount(value)
    return value


_item_by_id = Prepared(Item.select().where(Item.id == slot("id")).limit(1))
_version_metrics = Prepared(ModelVersion.select(ModelVersion.metrics).where(ModelVersion.id == slot("id")).limit(1))


def pick_reason(lease):
    """Why ``lease``'s strategy picked its item (models.names.STRATEGY_WHY), saying so when the blend picked the
    queue while its logistic part gives the suggestions (a version with "queue_from_counterpart")."""
    if lease.strategy in STRATEGY_WHY_BLEND_PICKED and lease.model_version_id is not None:
        version = _version_metrics.first(id=lease.model_version_id)
        if version is not None and (version.metrics or {}).get("queue_from_counterpart"):
            return STRATEGY_WHY_BLEND_PICKED[lease.strategy]
    return STRATEGY_WHY.get(lease.strategy)


def screen(dataset, lease, settings=None):
    """Everything the item panel shows for ``lease``: item, headline values, feature bars, suggestion,
    alternatives for a reject (most likely first), reason codes and similar labeled items."""
    settings = settings or labeling_settings(dataset)
    item = _item_by_id.first(id=lease.item_id)
    values = dict(zip(dataset.columns, item.display_values(dataset)))
    vector = item.feature_vector
    shown = lease.suggested is not None and lease.show_suggestion
    probabilities = lease.probabilities or {}
    rejected = set(lease.rejected or ())
    alternatives = sorted((label for label in dataset.labels if label != lease.suggested and label not in rejected),
                          key=lambda label: -float(probabilities.get(label, 0.0)))
    stats = pool_statistics(dataset)
    image = dataset.image_shape is not None  # an image is shown as one: no bars of its pixels
    bars = None if stats is None or image else feature_bars(vector, stats, dataset.feature_columns)
    return {
        "lease": lease,
        "item": item,
        "headline": [(column, _readable(dataset, item, column, values[column]))
                     for column in headline_columns(dataset)],
        "history": card_history(dataset, item),
        "image": image_view(dataset, item),  # None for transactions
        "merchant": merchant_history(dataset, item),
        "bars": bars,
        "chart": None if bars is None else chart_geometry(len(bars), dataset.feature_columns),
        "reconstruction": None if image else reconstruction_bars(dataset, item.id, vector, dataset.feature_columns),
        "shown": shown,
        "suggested": lease.suggested if shown else None,
        "probability": lease.probability if shown else None,
        "strategy": lease.strategy if shown else None,
        "why": pick_reason(lease) if shown else None,
        "alternatives": [(label, probabilities.get(label)) for label in alternatives],
        "label_keys": label_keys(dataset.labels),
        "rejected": [label for label in dataset.labels if label in rejected],
        "reasons": settings["reason_codes"],
        "reject_mode": settings["reject_mode"],
        "similar": [] if stats is None else similar_labeled(dataset, item.id, vector, stats, SIMILAR_COUNT),
    }
