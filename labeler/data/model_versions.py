"""A dataset's model versions as plain data for the header and the admin models page: each version's holdout
measure (its twin's AP, or macro AP for K labels, on the held-out labels, with their counts and the bootstrap
interval the retrain recorded in the gate dict), the baseline it was compared with, whether it serves and why.

The cross-validated figure in a version's metrics is scored on the labels it trained on (optimistic); it is
given here only under that name, never as the model's quality. Versions recorded before the interval was kept
(their gate dicts have no "interval") show their figures without one.
"""
from labeler.store.db import ModelVersion

CROSS_VALIDATED = "cross-validated on its own training labels (optimistic)"
RECORDED_LEVEL = 0.95  # models.gate.LEVEL: the level of gate records that do not name theirs


def measure_name(dataset):
    """"AP" for two labels, "macro AP" for K > 2 labels."""
    return "macro AP" if len(dataset.labels) > 2 else "AP"


def holdout_figure(version, dataset):
    """The holdout measure of ``version`` (a ModelVersion of ``dataset``) as plain data: ``measured`` (bool),
    ``value``, ``interval`` ([low, high] or None), ``level``, ``labels`` and ``positives`` held out (None when
    the version has no gate record), and ``text``, one line for people, e.g. "holdout AP 0.83 (95% interval
    0.71–0.92; 120 held-out labels, 14 fraud)" or "holdout: 3 fraud among 40 held-out labels, too few to
    measure"."""
    record = version.gate or {}
    measure = measure_name(dataset)
    figure = {"measure": measure, "measured": False, "value": record.get("new_ap"),
              "interval": record.get("interval"), "level": record.get("level", RECORDED_LEVEL),
              "labels": record.get("holdout"), "positives": record.get("positives")}
    if figure["labels"] is None:
        return {**figure, "text": "holdout not recorded (trained before the gate)"}
    counts = f"{figure['labels']:,} held-out labels"
    positive = dataset.positive_name
    if figure["value"] is None:
        among = f"{figure['positives']:,} {positive} among {counts}" if positive else counts
        # a record with "interval" was measured whenever the holdout allowed it; an older one may not have been
        why = "too few to measure" if "interval" in record else "not measured"
        return {**figure, "text": f"holdout: {among}, {why}"}
    details = [counts + (f", {figure['positives']:,} {positive}" if positive else "")]
    if figure["interval"] is not None:
        low, high = figure["interval"]
        details.insert(0, f"{figure['level']:.0%} interval {low:.2f}–{high:.2f}")
    return {**figure, "measured": True,
            "text": f"holdout {measure} {figure['value']:.2f} ({'; '.join(details)})"}


def model_versions(dataset):
    """Every ModelVersion of ``dataset``, newest first, each a dict: id, created_at, kind, device, labels_used,
    ``holdout`` (holdout_figure), ``baseline`` (its name, "model 3" or "cold start"), ``baseline_version`` (id
    or None), ``baseline_value`` (the baseline's measure on the same held-out labels, None when not compared),
    ``passed``, ``bound``, ``reason`` (the gate's sentence), ``line`` (why a loser does not serve), ``serving``,
    ``served_at``, ``served_until`` (when the next version began serving, None), ``below_baseline`` (the
    sentence saying why a version serves though its measure is below its baseline's, else None),
    ``cross_validated``, ``prequential`` (prequential_line), ``pseudo_labels`` (the pseudo-labels standing after its
    retrain, None when not recorded) and ``adaptive`` (the adaptive loop's shares of its queue and each strategy's labeled picks
    before it, None when the loop was off)."""
    versions = list(ModelVersion.select().where(ModelVersion.dataset == dataset)
                    .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()))
    starts = sorted((version.served_at, version.id) for version in versions if version.served_at is not None)
    rows = []
    for version in versions:
        record = version.gate or {}
        metrics = version.metrics or {}
        replaced = None
        if version.served_at is not None and not version.serving:
            replaced = next((at for at, other in starts if (at, other) > (version.served_at, version.id)), None)
        rows.append({
            "id": version.id, "created_at": version.created_at, "kind": version.kind, "device": version.device,
            "labels_used": version.labels_used, "holdout": holdout_figure(version, dataset),
            "baseline": record.get("baseline"), "baseline_version": record.get("baseline_version"),
            "baseline_value": record.get("old_ap"), "passed": record.get("passed"), "bound": record.get("bound"),
            "reason": record.get("reason"), "line": record.get("line"), "serving": version.serving,
            "served_at": version.served_at, "served_until": replaced,
            "below_baseline": below_baseline(record, measure_name(dataset)),
            "cross_validated": _number(metrics.get("auprc")), "prequential": prequential_line(version),
            "pseudo_labels": metrics.get("pseudo_standing"),
            "adaptive": metrics.get("adaptive")})
    return rows


def prequential_line(version):
    """One sentence on why a binary blend or its logistic part alone served (models.prequential), from the figures
    its retrain recorded; None for other versions and versions recorded before the choice existed."""
    metrics = version.metrics or {}
    figures = metrics.get("prequential")
    if not isinstance(figures, dict) or "labels" not in figures:
        return None
    labels = f"{figures['labels']:,} label{'s' if figures['labels'] != 1 else ''}"
    if metrics.get("queue_from_counterpart"):
        held = f"{labels}, {figures['positives']:,} of them positive"
        compared = ("" if figures.get("blend_ap") is None else
                    f" The logistic part ranked them at AP {figures['logistic_ap']:.2f}, the blend at "
                    f"{figures['blend_ap']:.2f}.")
        return (f"The logistic part of the blend alone gives the scores, and the blend picks the queue: the blend's "
                f"scores serve once the labels scored before they were given hold {figures['serve_each']} of each "
                f"label and it ranked them at least as well (now {held}).{compared}")
    if figures.get("blend_ap") is None:  # a version trained before the blend needed the record's trust to serve
        return (f"The blend, not its logistic part alone: the labels scored before they were given ({labels}) "
                f"held too few of each label to compare the two.")
    chosen = "The logistic part of the blend alone" if version.kind != "blend" else "The blend"
    return (f"{chosen}: on the {labels} scored before they were given, the logistic part ranked at AP "
            f"{figures['logistic_ap']:.2f} and the blend at {figures['blend_ap']:.2f}.")


def below_baseline(record, measure):
    """Why a version serves though its holdout ``measure`` is below its baseline's, from its gate ``record``:
    one sentence quoting the bound, or None when it passed with a measure at least its baseline's, lost, or was
    not compared."""
    new, old, bound = record.get("new_ap"), record.get("old_ap"), record.get("bound")
    if not record.get("passed") or new is None or old is None or bound is None or new >= old:
        return None
    level = record.get("level", RECORDED_LEVEL)
    return (f"Its {measure} {new:.2f} is below {record.get('baseline')}'s {old:.2f} on the same held-out labels, "
            f"yet the gate let it serve: the difference is within the bootstrap noise (the {level:.0%} quantile "
            f"of the resampled differences, new minus baseline, is {bound:+.3f}, not below zero; the gate stops a "
            f"model only when it is worse in more than {level:.0%} of the resamples).")


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
