"""The admin's latent map as SVG geometry: the autoencoder's 2-D map of the pool, read from the worker's stored
outputs (labeler.store.artifacts), coloured by label."""
import numpy as np

from labeler.store.artifacts import labels_since, latent_map
from labeler.store.db import Item

UNLABELED_COLOUR = "#9aa3ad"
POSITIVE_COLOUR = "#c62828"
LABEL_COLOURS = ("#2e7d32", "#0b5fff", "#8e24aa", "#ef6c00", "#00838f", "#6d4c41", "#c2185b", "#827717")


def map_view(dataset, width=640, height=480, margin=8):
    """What the admin's latent-map page draws, or None when ``dataset`` has no readable map: a dict with
    ``groups`` (unlabeled first, then each label of the dataset's label set, then any other label; each with
    label, colour, count and points as (x, y, external id) in SVG units, the projection's aspect kept),
    width, height, projection, the artifacts row as ``record`` and ``labels_since`` (human labels written
    since the map was computed)."""
    stored = latent_map(dataset)
    if stored is None:
        return None
    x, y = stored["x"].astype(np.float64), stored["y"].astype(np.float64)
    unit = min(width - 2 * margin, height - 2 * margin) / max(float(np.ptp(x)), float(np.ptp(y)), 1e-12)
    left = (width - unit * float(np.ptp(x))) / 2
    top = (height - unit * float(np.ptp(y))) / 2
    cx = left + (x - x.min()) * unit
    cy = top + (y.max() - y) * unit  # SVG y grows downwards
    labels = stored["labels"].astype(str)
    present = set(labels.tolist()) - {""}
    order = [""] + [label for label in dataset.labels if label in present] + sorted(present - set(dataset.labels))
    labeled_ids = stored["ids"][labels != ""].tolist()
    external = {}
    for start in range(0, len(labeled_ids), 500):
        external.update(Item.select(Item.id, Item.external_id)
                        .where(Item.id.in_(labeled_ids[start:start + 500])).tuples())
    palette = iter(LABEL_COLOURS * (1 + len(order) // len(LABEL_COLOURS)))
    groups = []
    for label in order:
        members = np.flatnonzero(labels == label)
        if label == "":
            colour = UNLABELED_COLOUR
        elif label == dataset.positive_label:
            colour = POSITIVE_COLOUR
        else:
            colour = next(palette)
        points = [(round(float(cx[i]), 1), round(float(cy[i]), 1), external.get(int(stored["ids"][i])))
                  for i in members]
        groups.append({"label": label or "unlabeled", "labeled": label != "", "colour": colour,
                       "count": len(members), "points": points})
    record = stored["record"]
    return {"groups": groups, "width": width, "height": height, "projection": stored["projection"],
            "record": record, "points": len(labels), "labels_since": labels_since(dataset, record)}
