"""Import image items into the label store: an NPZ of pixel arrays or a folder of PNG files.

An NPZ holds ``X`` (n×h×w grey, or n×h×w×c with c 1 or 3), optionally ``y`` (ground truth, one value per image)
and ``ids`` (one id per image; without them an image's id is its row number). A folder holds PNG files: those in
a sub-folder have the sub-folder's name as ground truth, those directly in the folder have none; an image's id is
its path in the folder (``7/img_012.png``); entries whose names start with '.' are skipped.

Pixels are scaled to [0, 1] by one divisor per dataset, chosen at its first import and kept in its roles
(``roles["image"]["scale"]``): 255 for 8-bit pixels (uint8 arrays, PNG files); for other arrays 1 when every
value lies in 0..1, else the largest value (the digits' 0..16 are divided by 16). An append uses the dataset's
divisor and is refused when its values do not fit it. Each image's features are its scaled pixels, row-major
(row, column, channel), as float32, named ``px_r_c`` (``px_r_c_ch`` for colour).

The contract is the CSV importer's (labeler.data.importer): all or nothing in one transaction, one-line
ImportFailed naming the file and what is wrong where, re-importing the same file adds nothing.
"""
import os
import zipfile

import numpy as np
from PIL import Image, UnidentifiedImageError

from models.names import SGAN

from labeler.data.errors import ImportFailed
from labeler.data.importer import (
    COMPARE_BATCH,
    ImportResult,
    _bulk_insert,
    _insert_ground_truth,
    check_dataset_name,
    create_dataset,
    hold_appends,
    settle_label_set,
)
from labeler.store.db import Dataset, Item, database
from labeler.store.pool import pool_size

NPZ_ARRAYS = ("X", "y", "ids")
MAX_VALUES = 256 * 256 * 3  # pixel values per image (features) at most: 256×256 RGB
INSERT_ROWS = 5_000  # images inserted (and progress reported) per batch
ID_LIMIT = 200  # characters of an id (Item.external_id)
ID_SOURCES = {None: "row numbers", "ids": "the NPZ's ids array", "file": "PNG file paths"}
PNG_MODES = {"1": 1, "L": 1, "LA": 1, "P": 3, "RGB": 3, "RGBA": 3}  # readable PNG modes -> channels


def is_image_source(path):
    """True when ``path`` is for import_images (an .npz file or a folder) rather than the CSV importer."""
    return str(path).lower().endswith(".npz") or os.path.isdir(path)


def feature_names(shape):
    """The feature names of images of ``shape`` (height, width, channels): ``px_r_c``, or ``px_r_c_ch``."""
    height, width, channels = shape
    if channels == 1:
        return [f"px_{row}_{column}" for row in range(height) for column in range(width)]
    return [f"px_{row}_{column}_{channel}" for row in range(height) for column in range(width)
            for channel in range(channels)]


def import_images(path, dataset_name, labels=None, positive_labels=None, progress=None):
    """Import the NPZ file or PNG folder ``path`` into the image dataset ``dataset_name``, creating it on first
    import (``labels``: its label set, default the ground truth's values in natural order, or genuine/fraud;
    ``positive_labels``: those that count as fraud, default importer.default_positive_labels).
    ``progress(done, total)`` is called after each batch of images. Returns an ImportResult.

    Raises ImportFailed with one line naming the file and what is wrong where; the store is then unchanged.
    Re-importing adds only images whose ids are new; where the ids are row numbers, a stored row must hold the
    very same pixels (the same file, or a longer version of it), else the file is refused.
    """
    progress = progress or (lambda done, total: None)
    if not os.path.exists(path):
        raise ImportFailed(f"{path}: no such file or folder")
    if os.path.isdir(path):
        name = os.path.basename(os.path.normpath(path)) or path
        source = _read_folder(path, name)
    else:
        name = os.path.basename(path)
        source = _read_npz(path, name)
    pixels, truth, ids, id_source, label_source = source
    existing = Dataset.get_or_none(Dataset.name == dataset_name)
    if existing is None:
        check_dataset_name(dataset_name)
    shape = tuple(int(size) for size in pixels.shape[1:])
    if existing is not None:
        _check_same_kind(existing, shape, id_source, name)
    scale = _divisor(pixels, name, existing)
    features = _scaled(pixels, scale)
    if ids is None:
        ids = [str(row) for row in range(len(features))]
    with database.atomic():
        dataset, created = existing, existing is None
        if created:
            dataset = create_dataset(
                name, dataset_name, columns=[], text_columns=[], feature_columns=feature_names(shape),
                labels=list(labels) if labels else [], id_column=id_source, label_column=label_source,
                # the chapter's semi-supervised GAN (convolutional where the size fits) competes in model
                # selection on images: the unlabeled pool is where it learns what the digits look like
                settings={"generative_candidates": [SGAN]}, roles={"image": {"shape": list(shape), "scale": scale}},
            )
            settle_label_set(dataset, {value for value in truth if value is not None},
                             labels, f"{name}: {label_source or 'ground truth'}", positive_labels)
            known, next_row = set(), 0
        else:
            _check_truth(truth, dataset, name, label_source)
            hold_appends(dataset)
            known = {external_id for (external_id,) in
                     Item.select(Item.external_id).where(Item.dataset == dataset).tuples()}
            next_row = pool_size(dataset)
            if id_source is None:
                _check_same_rows(dataset, ids, known, features, name)
        new = [position for position, external_id in enumerate(ids) if external_id not in known]
        truth_map = dataset.settings.get("truth_map", {})
        pending_truth = []
        for start in range(0, len(new), INSERT_ROWS):
            batch = new[start:start + INSERT_ROWS]
            rows = range(next_row + start, next_row + start + len(batch))
            _bulk_insert(Item, ["dataset_id", "external_id", "row_number", "numbers", "texts", "features"],
                         [[dataset.id] * len(batch), [ids[p] for p in batch], rows, [b""] * len(batch),
                          [None] * len(batch), [features[p].tobytes() for p in batch]])
            pending_truth += [(row, truth_map[truth[p]]) for row, p in zip(rows, batch) if truth[p] is not None]
            progress(start + len(batch), len(new))
        if pending_truth:
            _insert_ground_truth(dataset, pending_truth)
    height, width, channels = shape
    notes = [f"Images of {height}×{width} {'grey' if channels == 1 else 'RGB'}: pixels divided by {scale:g} "
             f"to lie in 0..1; features are the {height * width * channels:,} pixel values."]
    return ImportResult(dataset, created, len(ids), len(new), len(ids) - len(new), notes)


def _read_npz(path, name):
    """(pixels n×h×w×c, truth values as text or None per image, ids as text or None, id source, label source)
    of an NPZ file. Raises ImportFailed."""
    if os.path.getsize(path) == 0:
        raise ImportFailed(f"{name}: the file is empty")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ImportFailed(f"{name}: not a readable NPZ file ({_one_line(error)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ImportFailed(f"{name}: holds one array, not an NPZ archive of X (and y, ids); save it with numpy.savez")
    with archive:
        keys = list(archive.files)
        if "X" not in keys:
            raise ImportFailed(f"{name}: no array 'X' (arrays: {', '.join(keys) or 'none'}); an image NPZ holds X "
                               f"and optionally y and ids")
        others = [key for key in keys if key not in NPZ_ARRAYS]
        if others:
            raise ImportFailed(f"{name}: holds array(s) {', '.join(map(repr, others))} besides X, y and ids: they "
                               f"would not be imported; save the file without them")
        pixels = _pixels(_array(archive, "X", name), name)
        count = len(pixels)
        truth = [None] * count
        if "y" in keys:
            truth = _truth_of(_array(archive, "y", name), count, name)
        ids = _ids_of(_array(archive, "ids", name), count, name) if "ids" in keys else None
    return pixels, truth, ids, None if ids is None else "ids", "y" if "y" in keys else None


def _array(archive, key, name):
    """One array of the archive. Raises ImportFailed when it cannot be read (a pickled object array, a
    damaged member)."""
    try:
        return archive[key]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ImportFailed(f"{name}: {key} holds Python objects; save it as numbers or text") from None
        raise ImportFailed(f"{name}: {key} cannot be read ({_one_line(error)})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ImportFailed(f"{name}: {key} cannot be read ({_one_line(error)})") from None


def _pixels(array, name):
    """``X`` as n×h×w×c. Raises ImportFailed on a wrong shape or dtype, no image, too many values, or a value
    that is NaN, infinite or negative (naming its position)."""
    if array.ndim not in (3, 4):
        raise ImportFailed(f"{name}: X has {array.ndim} dimension{'s' if array.ndim != 1 else ''}; an image array "
                           f"is n×h×w or n×h×w×c")
    if array.ndim == 4 and array.shape[3] not in (1, 3):
        raise ImportFailed(f"{name}: X has {array.shape[3]} channels (its last dimension); an image has 1 (grey) "
                           f"or 3 (RGB)")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
            or array.dtype == np.bool_):
        raise ImportFailed(f"{name}: X holds {array.dtype} values, not numbers")
    if array.shape[0] == 0 or 0 in array.shape[1:]:
        raise ImportFailed(f"{name}: X holds no images (its shape is {'×'.join(map(str, array.shape))})")
    pixels = array if array.ndim == 4 else array[..., np.newaxis]
    values = int(np.prod(pixels.shape[1:]))
    if values > MAX_VALUES:
        raise ImportFailed(f"{name}: images of {'×'.join(map(str, pixels.shape[1:]))} have {values:,} values; at "
                           f"most {MAX_VALUES:,} (256×256 RGB) are imported")
    if np.issubdtype(pixels.dtype, np.floating):
        bad = ~np.isfinite(pixels)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ImportFailed(f"{name}: {_position(array, where)} is {pixels[where]}; pixels must be finite numbers")
    if pixels.dtype != np.bool_ and pixels.min() < 0:
        where = tuple(int(i) for i in np.argwhere(pixels < 0)[0])
        raise ImportFailed(f"{name}: {_position(array, where)} is {pixels[where]}; pixels must be 0 or more")
    return pixels


def _position(array, where):
    """``X[i, r, c]`` (``X[i, r, c, ch]`` for a 4-d X) of a position in the n×h×w×c view."""
    return f"X[{', '.join(map(str, where[:array.ndim]))}]"


def _truth_of(array, count, name):
    """The ground truth values as label text (integers without '.0'), None where empty. Raises ImportFailed on
    a wrong shape or a missing number."""
    if array.ndim != 1 or len(array) != count:
        raise ImportFailed(f"{name}: y has shape {'×'.join(map(str, array.shape)) or 'scalar'}; it must hold one "
                           f"value per image ({count:,})")
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            position = int(np.argmax(bad))
            raise ImportFailed(f"{name}: y[{position}] is {array[position]}; a label is a number or text")
        return [str(int(value)) if value.is_integer() else repr(value) for value in array.tolist()]
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return [str(int(value)) for value in array.tolist()]
    if array.dtype.kind in "US":
        values = [value.decode("utf-8", "replace") if isinstance(value, bytes) else value for value in array.tolist()]
        return [value.strip() or None for value in values]
    raise ImportFailed(f"{name}: y holds {array.dtype} values, not numbers or text")


def _ids_of(array, count, name):
    """The ids as text. Raises ImportFailed on a wrong shape, an empty or too long id, or one that repeats."""
    if array.ndim != 1 or len(array) != count:
        raise ImportFailed(f"{name}: ids has shape {'×'.join(map(str, array.shape)) or 'scalar'}; it must hold one "
                           f"id per image ({count:,})")
    if array.dtype.kind not in "iuUS":
        raise ImportFailed(f"{name}: ids holds {array.dtype} values; ids are whole numbers or text")
    seen = {}
    ids = []
    for position, value in enumerate(array.tolist()):
        text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()
        if not text:
            raise ImportFailed(f"{name}: ids[{position}] is empty")
        if len(text) > ID_LIMIT:
            raise ImportFailed(f"{name}: ids[{position}] is longer than {ID_LIMIT} characters")
        if text in seen:
            raise ImportFailed(f"{name}: ids[{position}] {text!r} repeats ids[{seen[text]}]")
        seen[text] = position
        ids.append(text)
    return ids


def _read_folder(path, name):
    """(pixels n×h×w×c uint8, truth per image, ids (paths in the folder), id source, label source) of a folder
    of PNG files, in path order. Raises ImportFailed."""
    files, nested = [], []  # (id, file path, truth); folders inside label folders
    for entry in _visible(path):
        if not entry.is_dir():
            files.append((entry.name, entry.path, None))
            continue
        for inner in _visible(entry.path):
            if inner.is_dir():
                nested.append((entry.name, inner.name))
            else:
                files.append((f"{entry.name}/{inner.name}", inner.path, entry.name))
    if not any(external_id.lower().endswith(".png") for external_id, _, _ in files):
        raise ImportFailed(f"{path}: is a directory holding no PNG files (a folder of images holds PNG files, one "
                           f"sub-folder per label)")
    if nested:
        label, inner = nested[0]
        raise ImportFailed(f"{name}/{label}/{inner}: a folder inside label folder {label!r}; a label folder holds "
                           f"PNG files only")
    for external_id, _, _ in files:
        if not external_id.lower().endswith(".png"):
            raise ImportFailed(f"{name}/{external_id}: not a .png file; a folder of images holds PNG files only "
                               f"(nothing in it is passed over)")
        if len(external_id) > ID_LIMIT:
            raise ImportFailed(f"{name}/{external_id}: the path is longer than {ID_LIMIT} characters")
    images, first = [], None
    for external_id, file_path, _ in files:
        image = _read_png(file_path, f"{name}/{external_id}")
        if first is None:
            first = (external_id, image.shape[:2])
        elif image.shape[:2] != first[1]:
            raise ImportFailed(f"{name}/{external_id}: is {image.shape[0]}×{image.shape[1]} pixels, the first image "
                               f"({first[0]}) {first[1][0]}×{first[1][1]}: all images must share one size")
        images.append(image)
    channels = max(image.shape[2] for image in images)  # grey images beside colour ones become RGB (no loss)
    pixels = np.stack([np.repeat(image, channels // image.shape[2], axis=2) for image in images])
    truth = [value for _, _, value in files]
    label_source = "label folders" if any(value is not None for value in truth) else None
    return pixels, truth, [external_id for external_id, _, _ in files], "file", label_source


def _visible(folder):
    """The entries of ``folder`` whose names do not start with '.', sorted by name."""
    return sorted((entry for entry in os.scandir(folder) if not entry.name.startswith(".")),
                  key=lambda entry: entry.name)


def _read_png(file_path, where):
    """The PNG's pixels as h×w×c uint8 (c 1 for grey, 3 for colour; an alpha channel must be opaque and is
    dropped). Raises ImportFailed when the file is not a readable 8-bit PNG or too large."""
    try:
        with Image.open(file_path) as image:
            if image.format != "PNG":
                raise ImportFailed(f"{where}: is a {image.format or 'non-PNG'} file, not a PNG")
            if image.mode not in PNG_MODES:
                raise ImportFailed(f"{where}: has pixel mode {image.mode}; 8-bit grey or RGB PNG files are read")
            channels = PNG_MODES[image.mode]
            width, height = image.size
            if width * height * channels > MAX_VALUES:
                raise ImportFailed(f"{where}: {width}×{height} pixels are more than an image item holds (at most "
                                   f"{MAX_VALUES:,} values, 256×256 RGB)")
            image.load()
            if image.mode in ("LA", "RGBA") and np.asarray(image.getchannel("A")).min() < 255:
                raise ImportFailed(f"{where}: has transparent pixels; save it without transparency")
            converted = image.convert("L" if channels == 1 else "RGB")
    except ImportFailed:
        raise
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as error:
        raise ImportFailed(f"{where}: not a readable PNG file ({_one_line(error)})") from None
    return np.asarray(converted, dtype=np.uint8).reshape(height, width, channels)


def _divisor(pixels, name, dataset):
    """What the pixels are divided by (see the module's docstring): the rule for a new dataset, the dataset's
    stored divisor for an append. Raises ImportFailed when the file's values do not fit the dataset's."""
    maximum = float(pixels.max())
    if pixels.dtype == np.uint8:
        own, kind = 255.0, "8-bit pixels"
    elif maximum <= 1:
        own, kind = 1.0, "values in 0..1"
    else:
        own, kind = maximum, f"values up to {maximum:g}"
    if dataset is None:
        return own
    stored = float(((dataset.roles or {}).get("image") or {}).get("scale", 1.0))
    if own == stored or (pixels.dtype != np.uint8 and 1 < maximum <= stored):
        return stored
    raise ImportFailed(f"{name}: holds {kind}, but dataset {dataset.name!r} divides pixels by {stored:g} (chosen at "
                       f"its first import): save the images on that scale")


def _scaled(pixels, scale):
    """Each image's pixels divided by ``scale``, one float32 row per image (row-major height, width, channel)."""
    return (pixels.reshape(len(pixels), -1).astype(np.float64) / scale).astype(np.float32)


def _check_same_kind(dataset, shape, id_source, name):
    """Raise ImportFailed unless ``dataset`` holds images of ``shape`` whose ids come from the same source."""
    if dataset.image_shape is None:
        raise ImportFailed(f"{name}: dataset {dataset.name!r} holds transactions, not images")
    if tuple(dataset.image_shape) != shape:
        raise ImportFailed(f"{name}: images are {'×'.join(map(str, shape))}, dataset {dataset.name!r} holds "
                           f"{'×'.join(map(str, dataset.image_shape))} (height×width×channels)")
    if dataset.id_column != id_source:
        raise ImportFailed(f"{name}: dataset {dataset.name!r} takes its ids from {ID_SOURCES.get(dataset.id_column)}, "
                           f"this import from {ID_SOURCES[id_source]}")


def _check_truth(truth, dataset, name, label_source):
    """Raise ImportFailed when a ground truth value of an append is not in the dataset's label set."""
    allowed = dataset.settings.get("truth_map", {})
    for position, value in enumerate(truth):
        if value is not None and value not in allowed:
            raise ImportFailed(f"{name}: {label_source} value {value!r} (image {position}) is not in the dataset's "
                               f"label set ({', '.join(sorted(allowed)) or 'no ground truth at its first import'})")


def _check_same_rows(dataset, ids, known, features, name):
    """Raise ImportFailed when an image whose row-number id is already stored differs from the stored one: the
    file is then another file, not this one again (nor a longer version of it)."""
    positions = [position for position, external_id in enumerate(ids) if external_id in known]
    for start in range(0, len(positions), COMPARE_BATCH):
        batch = positions[start:start + COMPARE_BATCH]
        stored = dict(Item.select(Item.external_id, Item.features)
                      .where(Item.dataset == dataset, Item.external_id.in_([ids[p] for p in batch])).tuples())
        for position in batch:
            if bytes(stored[ids[position]]) != features[position].tobytes():
                raise ImportFailed(
                    f"{name}: image {position} differs from image {ids[position]} already in dataset "
                    f"{dataset.name!r}, whose ids are row numbers: only the same file, or a longer version of it, "
                    f"can be imported into it again (import a different file into a new dataset, or give the "
                    f"images ids)")


def _one_line(error):
    """An exception's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__
