"""A dataset's settings: one schema, validated here, stored in ``Dataset.settings``.

The loop's settings (queue mix, uncertainty measure, pseudo-labels, model selection, when to retrain) sit at
the top level of ``Dataset.settings``; the labeling screen's under ``labeling``. The importer also keeps the
file's ``truth_map`` there. Numbers computed from the pool (feature statistics) are stored apart, in their own
table, never here.
"""
import math

from models.names import (COMMITTEE, EXPLORATION, GENERATIVE_CANDIDATES, HIGH_RISK, MIX_STRATEGIES, UNCERTAIN,
                          UNCERTAINTY_MEASURES)

from labeler.store.db import Dataset, write_transaction

PSEUDO_SHARE = 0.2  # chosen on development seeds 10-12 of bench/pseudo_share.py (README)

DEFAULTS = {
    # the committee (models.committee) picks only when a dataset's mix gives it a share: it gained on Caravan and
    # lost on Wage (development seeds, bench/results/committee_dev.txt)
    "mix": {HIGH_RISK: 0.2, UNCERTAIN: 0.7, COMMITTEE: 0.0, EXPLORATION: 0.1},
    "uncertainty": "least_confidence",  # or "margin", "entropy"
    "queue_size": 500,
    "pseudo_labels": True,
    "pseudo_confidence": 0.99,  # a prediction at least this sure becomes a pseudo-label
    "pseudo_limit": 20000,  # most pseudo-labels kept
    "pseudo_share": PSEUDO_SHARE,  # ... and at most this share of the pool (bench/pseudo_share.py)
    "pseudo_positives": False,  # also pseudo-label confident positives (off: only confident negatives)
    "human_weight": 5,  # each human label is trained on this many times beside the pseudo-labels
    "anomaly_feature": False,  # append the anomaly score to the features
    "adaptive": False,  # the adaptive loop (models.adaptive, binary datasets): off until it wins (bench/suite.py)
    "cv_folds": 5,
    "cv_repeats": 2,
    "select_every": 50,  # the simulation re-runs model selection once this many labels arrived since the last
    "generative_candidates": [],  # any of "latent", "vae_balance", "sgan": models.generative_candidates
    "retrain_every": 50,  # a retrain is queued once this many human labels arrived since the last one (sooner
    # while the labels are few or frauds come fast: retrain_due)
    "labeling": {
        "lease_minutes": 10.0,  # an item on screen is held this long; after that another analyst may take it
        "skip_minutes": 5.0,  # a skipped item is held back this long before it is offered again
        "reject_mode": "pick",  # more than two labels: "pick" (choose the right one) or "requeue" (next guess later)
        "reason_codes": ["card not present", "account takeover", "card testing", "friendly fraud", "other"],
        "overlap_share": 0.0,  # share of labeled items given to a second analyst, blind to the first answer
        "hide_suggestion_share": 0.0,  # share of items shown without the suggestion (follow-the-model check)
        "review_share": 0.0,  # share of fraud labels sent to a reviewer even when the analysts agree
        "refill_below": 100,  # ask the worker for a queue refill when fewer free entries remain
    },
}
REJECT_MODES = ("pick", "requeue")
YOUNG_RETRAIN_STEP = 10
RETRAIN_POSITIVES = 5
WHOLE_NUMBERS = ("queue_size", "pseudo_limit", "human_weight", "select_every", "cv_repeats", "retrain_every")
SWITCHES = ("pseudo_labels", "pseudo_positives", "anomaly_feature", "adaptive")
# what an admin may change (update_settings): some of the loop's settings and all of the labeling screen's
EDITABLE = ("retrain_every", "queue_size", "mix", "uncertainty", "pseudo_labels", "pseudo_share", "pseudo_confidence",
            "generative_candidates", *DEFAULTS["labeling"])
CHOICES = {"mix": MIX_STRATEGIES, "uncertainty": UNCERTAINTY_MEASURES, "generative_candidates": GENERATIVE_CANDIDATES,
           "reject_mode": REJECT_MODES}


class SettingsError(ValueError):
    """A setting that is not valid; the message names the dataset (where known) and the setting."""


def retrain_step(labels, every):
    """How many new human labels queue the next retrain when ``labels`` human labels were given: a tenth of them,
    at least YOUNG_RETRAIN_STEP and at most ``every`` (the dataset's retrain_every), so that a young model is refit
    about as often as the benchmarks refit theirs (after every 10 labels) and a grown one every ``every``."""
    return max(1, min(every, max(YOUNG_RETRAIN_STEP, labels // 10)))


def retrain_due(labels, new, new_positives, every):
    """Whether ``new`` human labels since the last retrain, ``new_positives`` of them positive, out of ``labels``
    in all, call for the next: retrain_step of them, or RETRAIN_POSITIVES positives among at least
    YOUNG_RETRAIN_STEP of them (while the model is finding frauds, it is refit as often as the benchmarks')."""
    return new >= retrain_step(labels, every) or (new >= min(every, YOUNG_RETRAIN_STEP)
                                                  and new_positives >= RETRAIN_POSITIVES)


def engine_settings(dataset):
    """The loop's settings of ``dataset``: ``Dataset.settings`` over DEFAULTS (the mix merged by key), without
    the labeling screen's. Raises SettingsError for an unknown strategy, measure or candidate, or a value out of
    range."""
    return _checked(_merged(dataset.settings, dataset.labels), dataset.name)


def _merged(stored, labels):
    """The loop's settings: ``stored`` (a ``Dataset.settings``) over DEFAULTS for a dataset of ``labels``."""
    stored = dict(stored or {})
    merged = {key: stored.get(key, value) for key, value in DEFAULTS.items() if key != "labeling"}
    merged["mix"] = {**DEFAULTS["mix"], **(stored.get("mix") or {})}
    if "uncertainty" not in stored and len(labels or ()) > 2:
        # K classes: the margin between the two most likely labels found the digits' confusions sooner (90%
        # test accuracy after 90-110 labels against 100-140 by least confidence; development seeds 10-12)
        merged["uncertainty"] = "margin"
    return merged


def _checked(merged, name):
    """``merged`` (the loop's settings of dataset ``name``) once valid. Raises SettingsError for the first bad
    one: the one set of rules, for what is stored and for what an admin asks to store."""
    where = f"dataset {name!r}, setting"
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
    for key in SWITCHES:
        if not isinstance(merged[key], bool):
            raise SettingsError(f"{where} {key}: must be on or off, got {merged[key]!r}")
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


def current_settings(dataset):
    """Every setting an admin may change (EDITABLE), as it applies to ``dataset`` now: {name: value}, the mix as
    {strategy: share}. Raises SettingsError as engine_settings does."""
    return _editable(engine_settings(dataset), labeling_settings(dataset))


def default_settings(dataset):
    """What current_settings would be with nothing stored for ``dataset``."""
    return _editable(_merged({}, dataset.labels), DEFAULTS["labeling"])


def _editable(engine, labeling):
    both = {**engine, **labeling}
    return {key: both[key] for key in EDITABLE}


def update_settings(dataset, changes):
    """Parse ``changes`` (setting name -> value, form strings or JSON values; the mix as {strategy: share}, any
    of them), check the settings they make by engine_settings' rules and store those that changed, in one write.

    Returns {name: [old, new]} for each setting whose value changed (empty when none did). Raises SettingsError,
    one line naming the setting, for an unknown setting or a bad value; nothing is stored then.
    """
    parsed = {key: _parse(key, raw) for key, raw in changes.items()}
    with write_transaction():
        fresh = Dataset.get_by_id(dataset.id)
        old = _editable(_merged(fresh.settings, fresh.labels), labeling_settings(fresh))
        new = {**old, **parsed}
        if "mix" in parsed:
            new["mix"] = {**old["mix"], **parsed["mix"]}
        changed = {key: [old[key], new[key]] for key in EDITABLE if new[key] != old[key]}
        settings = dict(fresh.settings or {})
        labeling = dict(settings.get("labeling") or {})
        for key in changed:
            if key in DEFAULTS["labeling"]:
                labeling[key] = new[key]
            else:
                settings[key] = new[key]
        settings["labeling"] = labeling
        _checked(_merged(settings, fresh.labels), fresh.name)
        if changed:
            Dataset.update(settings=settings).where(Dataset.id == dataset.id).execute()
    dataset.settings = settings
    return changed


def update_labeling_settings(dataset, changes):
    """update_settings for the labeling screen's settings only. Returns the new labeling settings. Raises
    SettingsError naming the first unknown setting (one of the loop's included) or bad value; nothing is stored
    then."""
    unknown = next((key for key in changes if key not in DEFAULTS["labeling"]), None)
    if unknown is not None:
        raise SettingsError(f"unknown labeling setting {unknown!r}")
    update_settings(dataset, changes)
    return labeling_settings(dataset)


def _parse(key, raw):
    """One setting an admin sent, parsed; range and name checks of the loop's settings are left to _checked.
    Raises SettingsError for an unknown setting or a value of the wrong kind."""
    if key not in EDITABLE:
        raise SettingsError(f"unknown setting {key!r} (an admin may change: {', '.join(EDITABLE)})")
    if key in DEFAULTS["labeling"]:
        return _parse_labeling(key, raw)
    if key == "mix":
        if not isinstance(raw, dict):
            raise SettingsError(f"mix must give a share per strategy, not {raw!r}")
        return {strategy: _number(f"mix share of {strategy}", share) for strategy, share in raw.items()}
    if key in ("retrain_every", "queue_size"):
        return _whole(key, raw)
    if key in ("pseudo_share", "pseudo_confidence"):
        return _number(key, raw)
    if key == "pseudo_labels":
        return _switch(key, raw)
    if key == "generative_candidates":
        return _names(raw)
    if not isinstance(raw, str):  # the uncertainty measure
        raise SettingsError(f"{key} must be a name, not {raw!r}")
    return raw.strip()


def _number(key, raw):
    """``raw`` (a number or its text) as a finite float. Raises SettingsError otherwise."""
    try:
        if isinstance(raw, bool):
            raise TypeError
        number = float(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{key} must be a number, not {raw!r}") from None
    if not math.isfinite(number):
        raise SettingsError(f"{key} must be a finite number, not {raw!r}")
    return number


def _whole(key, raw):
    """``raw`` as an int. Raises SettingsError unless it is a whole number."""
    number = _number(key, raw)
    if number != int(number):
        raise SettingsError(f"{key} must be a whole number, not {raw!r}")
    return int(number)


def _switch(key, raw):
    """``raw`` (a bool, or on/off, true/false, yes/no, 1/0 as text) as a bool. Raises SettingsError otherwise."""
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in ("on", "true", "yes", "1"):
        return True
    if word in ("off", "false", "no", "0"):
        return False
    raise SettingsError(f"{key} must be on or off, not {raw!r}")


def _names(raw):
    """A list of names from a list or comma-separated text (blanks dropped). Raises SettingsError otherwise."""
    if isinstance(raw, str):
        raw = raw.split(",")
    if not isinstance(raw, (list, tuple)) or not all(isinstance(name, str) for name in raw):
        raise SettingsError(f"generative_candidates must be a list of names, not {raw!r}")
    return [name.strip() for name in raw if name.strip()]


def _parse_labeling(key, raw):
    if key == "reject_mode":
        if not isinstance(raw, str) or raw not in REJECT_MODES:
            raise SettingsError(f"reject_mode must be one of {', '.join(REJECT_MODES)}, not {raw!r}")
        return raw
    if key == "reason_codes":
        if not isinstance(raw, (str, list, tuple)):
            raise SettingsError(f"reason_codes must be a list of codes, not {raw!r}")
        codes = [c.strip() for c in raw.split(",")] if isinstance(raw, str) else [str(c).strip() for c in raw]
        codes = [c for c in codes if c]
        if any(len(code) > 80 for code in codes):
            raise SettingsError("reason_codes: each code must have at most 80 characters")
        if len(codes) > 9:
            raise SettingsError("reason_codes: at most 9 codes (one per digit key)")
        return codes
    number = _number(key, raw)
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
