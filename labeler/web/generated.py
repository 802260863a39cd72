"""The admin's generated-samples page: what the worker's VAE made of a dataset (labeler.worker.generated), read
from the stored ``.npy`` files with numpy alone. Image datasets: the latent walk's grid and generated images
beside real ones, as PNG; tabular datasets: generated rows beside real rows and each feature's mean and standard
deviation, real against generated."""
import numpy as np

from labeler.store.artifacts import READ_ERRORS
from labeler.store.db import GeneratedSamples, Item
from labeler.web.images import grid_png
from labeler.worker import jobs

PICTURES = ("grid", "generated", "real")  # the PNGs of an image dataset's page
SAMPLE_COLUMNS = 10  # generated and real images per row of their pictures
PICTURE_WIDTH = 480  # about how wide the page draws a picture, in CSS pixels (scaled by a whole factor)


def samples_of(dataset):
    """The GeneratedSamples row of ``dataset``, or None."""
    return GeneratedSamples.get_or_none(GeneratedSamples.dataset == dataset)


def _arrays(record, dataset):
    """{"grid", "generated", "real", "real_ids"}: the stored arrays of ``record``, or None when a file is missing,
    unreadable or not of ``dataset``'s features."""
    paths = {"grid": record.grid_path, "generated": record.generated_path, "real": record.real_path,
             "real_ids": record.real_ids_path}
    try:
        arrays = {name: np.load(path, allow_pickle=False) for name, path in paths.items()}
    except READ_ERRORS:
        return None
    rows = [arrays[name] for name in ("grid", "generated", "real")]
    if any(array.ndim != 2 or array.shape[1] != dataset.n_features for array in rows) \
            or len(arrays["grid"]) != record.grid_steps ** 2 or len(arrays["real_ids"]) != len(arrays["real"]):
        return None
    return arrays


def picture_png(dataset, picture):
    """PNG bytes of an image dataset's ``picture`` ("grid": the latent walk, "generated" or "real": the samples),
    or None when ``dataset`` is not of images, has no readable samples or ``picture`` is unknown."""
    shape = dataset.image_shape
    record = samples_of(dataset)
    if shape is None or record is None or picture not in PICTURES:
        return None
    arrays = _arrays(record, dataset)
    if arrays is None:
        return None
    columns = record.grid_steps if picture == "grid" else min(SAMPLE_COLUMNS, len(arrays[picture]))
    return grid_png(arrays[picture], shape, columns)


def readable(value):
    """A feature value as the page prints it: thousands separated, two decimals, tiny values in exponent form."""
    value = float(value)
    if value != 0.0 and abs(value) < 0.005:
        return f"{value:.1e}"
    return f"{value:,.2f}"


def _picture(url, shape, count, columns, gap=1):
    """What the page needs for one picture of ``count`` images of ``shape``, ``columns`` to a row (grid_png's
    layout): its ``url``, the width it is drawn at (a whole multiple of the PNG's) and the count."""
    png_width = (shape[1] + gap) * columns - gap
    return {"url": url, "width": png_width * max(1, round(PICTURE_WIDTH / png_width)), "count": count}


def page_view(dataset, url_for_picture):
    """What the generated-samples page shows: a dict with ``job`` (the newest generated-samples job, or None),
    ``pending`` (one waits or runs: the page polls), ``record`` (the GeneratedSamples row, or None when none is
    stored or its files are unreadable), ``image`` (an image dataset); with a record, for images ``pictures``
    ({name: url, drawn width, count}), else ``columns``, ``rows`` (real rows then generated ones: source, item id,
    values as text) and ``summary`` (per feature: name, mean real and generated, standard deviation real and
    generated, as text; None when not recorded). ``url_for_picture(name)`` gives a PNG's address."""
    view = {"job": jobs.latest(dataset, jobs.GENERATED), "pending": jobs.is_pending(dataset, jobs.GENERATED),
            "image": dataset.image_shape is not None, "record": None}
    record = samples_of(dataset)
    arrays = None if record is None else _arrays(record, dataset)
    if arrays is None:
        return view
    view["record"] = record
    if view["image"]:
        shape = dataset.image_shape
        view["pictures"] = {
            "grid": _picture(url_for_picture("grid"), shape, len(arrays["grid"]), record.grid_steps),
            **{name: _picture(url_for_picture(name), shape, len(arrays[name]), min(SAMPLE_COLUMNS, len(arrays[name])))
               for name in ("generated", "real")}}
        return view
    external = dict(Item.select(Item.id, Item.external_id)
                    .where(Item.id.in_(arrays["real_ids"].tolist())).tuples())
    view["columns"] = dataset.feature_columns
    view["rows"] = ([("real", external.get(int(item_id), ""), [readable(v) for v in row])
                     for item_id, row in zip(arrays["real_ids"], arrays["real"])]
                    + [("generated", "", [readable(v) for v in row]) for row in arrays["generated"]])
    details = record.details or {}
    names = ("real_mean", "generated_mean", "real_std", "generated_std")
    stats = [details.get(name) or [] for name in names]
    view["summary"] = ([(column, *(readable(values[index]) for values in stats))
                        for index, column in enumerate(dataset.feature_columns)]
                       if all(len(values) == dataset.n_features for values in stats) else None)
    return view
