"""A dataset's settings: one schema, validated here, stored in ``Dataset.settings``.

The loop's settings (queue mix, uncertainty measure, pseudo-labels, model selection, when to retrain) sit at
the top level of ``Dataset.settings``; the labeling screen's under ``labeling``. The importer also keeps the
file's ``truth_map`` there. Numbers computed from the pool (feature statistics) are stored apart, in their own
table, never here.
"""
from models.names import EXPLORATION, GENERATIVE_CANDIDATES, HIGH_RISK, MIX_STRATEGIES, UNCERTAIN, UNCERTAINTY_MEASURES

from labeler.store.db import Dataset, write_transaction

PSEUDO_SHARE = 0.2  # chosen on development seeds 10-12 of bench/pseudo_share.py (README)

DEFAULTS = {
    "mix": {HIGH_RISK: 0.2, UNCERTAIN: 0.7, EXPLORATION: 0.1},
    "uncertainty": "least_confidence",  # or "margin", "entropy"
    "queue_size": 500,
    "pseudo_labels": True,
    "pseudo_confidence": 0.99,  # a prediction at least this sure becomes a pseudo-label
    "pseudo_limit": 20000,  # most pseudo-labels kept
    "pseudo_share": PSEUDO_SHARE,  # ... and at most this share of the pool (bench/pseudo_share.py)
    "pseudo_positives": False,  # also pseudo-label confident positives (off: only confident negatives)
    "human_weight": 5,  # each human label is trained on this many times beside the pseudo-labels
    "anomaly_feature": False,  # append the anomaly score to the features
    "cv_folds": 5,
    "cv_repeats": 2,
    "select_every": 50,  # the simulation re-runs model selection once this many labels arrived since the last
    "generative_candidates": [],  # any of "latent", "vae_balance", "sgan": models.generative_candidates
    "retrain_every": 50,  # a retrain is queued once this many human labels arrived since the last one
    "labeling": {
        "lease_minutes": 10.0,  # an item on screen is held this long; after that another analyst may take it
        "skip_minutes": 5.0,  # a skipped item is held back this long before it is offered again
        "reject_mode": "pick",  # more than two labels: "pick" (choose the right one) or "requeue" (next guess later)
        "reason_codes": ["card not present", "account takeover", "card testing", "friendly fraud", "other"],
        "overlap_share": 0.0,  # share of labeled items given to a second analyst, blind to the first answer
        "hide_suggestion_share": 0.0,  # share of items shown without the suggestion (follow-the-model check)
        "refill_below": 100,  # ask the worker for a queue refill when fewer free entries remain
    },
}
REJECT_MODES = ("pick", "requeue")
WHOLE_NUMBERS = ("queue_size", "pseudo_limit", "human_weight", "select_every", "cv_repeats", "retrain_every")


class SettingsError(ValueError):
    """A setting that is not valid; the message names the dataset (where known) and the setting."""


def engine_settings(dataset):
    """The loop's settings of ``dataset``: ``Dataset.settings`` over DEFAULTS (the mix merged by key), without
    the labeling screen's. Raises SettingsError for an unknown strategy, measure or candidate, or a value out of
    range."""
    stored = dict(dataset.settings or {})
    merged = {key: stored.get(key, value) for key, value in DEFAULTS.items() if key != "labeling"}
    merged["mix"] = {**DEFAULTS["mix"], **(stored.get("mix") or {})}
    if "uncertainty" not in stored and len(dataset.labels or ()) > 2:
        # K classes: the margin between the two most likely labels found the digits' confusions sooner (90%
        # test accuracy after 90-110 labels against 100-140 by least confidence; development seeds 10-12)
        merged["uncertainty"] = "margin"
    where = f"dataset {dataset.name!r}, setting"
    unknown = set(merged["mix"]) - set(MIX_STRATEGIES)
    if unknown:
        raise SettingsError(f"{where} mix: unknown strategy {sorted(unknown)[0]!r} "
                            f"(known: {', '.join(MIX_STRATEGIES)})")
    shares = list(merged["mix"].values())
    if not all(isinstance(share, (int, float)) and share >= 0 for share in shares) or sum(shares) <= 0:
        raise SettingsError(f"{where} mix: shares must be numbers >= 0 with a positive sum, got {merged['mix']}")
    if merged["uncertainty"] not in UNCERTAINTY_MEASURES:
        raise SettingsError(f"{where} uncertainty: {merged['uncertainty']!r} is not one of "
                            f"{', '.join(UNCERTAINTY_MEASURES)}")
    if not 0.5 < float(merged["pseudo_confidence"]) <= 1:
        raise SettingsError(f"{where} pseudo_confidence: must be above 0.5 and at most 1")
    if not isinstance(merged["pseudo_share"], (int, float)) or not 0 <= merged["pseudo_share"] <= 1:
        raise SettingsError(f"{where} pseudo_share: must be a share of the pool from 0 to 1, got "
                            f"{merged['pseudo_share']!r}")
    for key in WHOLE_NUMBERS:
        if not isinstance(merged[key], (int, float)) or merged[key] < 1:
            raise SettingsError(f"{where} {key}: must be a number of at least 1, got {merged[key]!r}")
    if not isinstance(merged["cv_folds"], int) or merged["cv_folds"] < 2:
        raise SettingsError(f"{where} cv_folds: must be an integer of at least 2, got {merged['cv_folds']!r}")
    names = merged["generative_candidates"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise SettingsError(f"{where} generative_candidates: must be a list of names, got {names!r}")
    unknown = next((name for name in names if name not in GENERATIVE_CANDIDATES), None)
    if unknown is not None:
        raise SettingsError(f"{where} generative_candidates: unknown candidate {unknown!r} "
                            f"(known: {', '.join(GENERATIVE_CANDIDATES)})")
    return merged


def labeling_settings(dataset):
    """The labeling screen's settings of ``dataset`` (``Dataset.settings['labeling']`` over the defaults)."""
    stored = (dataset.settings or {}).get("labeling") or {}
    defaults = DEFAULTS["labeling"]
    return {**defaults, **{key: value for key, value in stored.items() if key in defaults}}


def update_labeling_settings(dataset, changes):
    """Validate ``changes`` (a dict of labeling setting name -> value, strings allowed) and store them.

    Returns the new labeling settings. Raises SettingsError naming the first bad setting; nothing is stored then.
    """
    clean = {}
    for key, raw in changes.items():
        if key not in DEFAULTS["labeling"]:
            raise SettingsError(f"unknown labeling setting {key!r}")
        clean[key] = _parse_labeling(key, raw)
    with write_transaction():
        fresh = Dataset.get_by_id(dataset.id)
        settings = fresh.settings or {}
        settings["labeling"] = {**(settings.get("labeling") or {}), **clean}
        Dataset.update(settings=settings).where(Dataset.id == dataset.id).execute()
    dataset.settings = settings
    return labeling_settings(dataset)


def _parse_labeling(key, raw):
    if key == "reject_mode":
        if raw not in REJECT_MODES:
            raise SettingsError(f"reject_mode must be one of {', '.join(REJECT_MODES)}, not {raw!r}")
        return raw
    if key == "reason_codes":
        codes = [c.strip() for c in raw.split(",")] if isinstance(raw, str) else [str(c).strip() for c in raw]
        codes = [c for c in codes if c]
        if any(len(code) > 80 for code in codes):
            raise SettingsError("reason_codes: each code must have at most 80 characters")
        if len(codes) > 9:
            raise SettingsError("reason_codes: at most 9 codes (one per digit key)")
        return codes
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{key} must be a number, not {raw!r}") from None
    if key.endswith("_share"):
        if not 0.0 <= number <= 1.0:
            raise SettingsError(f"{key} must lie between 0 and 1, not {number:g}")
        return number
    if key == "refill_below":
        if number < 0 or number != int(number):
            raise SettingsError(f"{key} must be a whole number of at least 0")
        return int(number)
    if not number > 0:
        raise SettingsError(f"{key} must be more than 0 minutes")
    return number
