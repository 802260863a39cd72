"""The datasets list, one dataset's paged table of items, and an image item's picture and reconstruction as PNG."""
from flask import Blueprint, abort, current_app, make_response, render_template, request
from flask_login import current_user, login_required

from labeler.data import datasets as datasets_service
from labeler.labeling import review
from labeler.labeling.image_view import NoImage, item_pixels, reconstruction_pixels, thumbnail_size
from labeler.web.images import png_of
from labeler.web.label import ITEM_ID

bp = Blueprint("datasets", __name__)

IMAGE_CACHE = "private, max-age=3600"  # an item's pixels never change; a new reconstruction has a new address


@bp.route("/")
@login_required
def index():
    return render_template("datasets.html", summaries=datasets_service.summaries())


@bp.route("/datasets/<name>")
@login_required
def show(name):
    try:
        dataset = datasets_service.get_dataset(name)
    except datasets_service.DatasetNotFound:
        abort(404)
    page = request.args.get("page", 1, type=int)
    items, pages, page, total = datasets_service.item_page(dataset, page, current_app.config["ITEMS_PER_PAGE"])
    context = dict(dataset=dataset, items=items, page=page, pages=pages, total=total,
                   thumbnail=thumbnail_size(dataset))
    # htmx restoring its history after a cache miss wants the whole page
    partial = request.headers.get("HX-Request") and not request.headers.get("HX-History-Restore-Request")
    if not partial and current_user.can_review:
        context["review_waiting"] = review.waiting_count(dataset)
    response = make_response(render_template("_items.html" if partial else "dataset.html", **context))
    response.vary.add("HX-Request")
    return response


@bp.route(f"/datasets/<name>/items/<{ITEM_ID}:item_id>.png")
@login_required
def item_png(name, item_id):
    """An image item as a PNG of its own size (the page scales it up); 404 for a dataset of transactions or an
    unknown item."""
    return _png(name, item_id, item_pixels)


@bp.route(f"/datasets/<name>/items/<{ITEM_ID}:item_id>/reconstruction.png")
@login_required
def reconstruction_png(name, item_id):
    """The autoencoder's stored reconstruction of an image item as a PNG; 404 when none is stored."""
    return _png(name, item_id, reconstruction_pixels)


def _png(name, item_id, pixels_of):
    """The PNG of ``pixels_of(dataset, item_id)`` (labeler.labeling.image_view), privately cacheable; aborts with
    404 for an unknown dataset, or when pixels_of raises NoImage."""
    try:
        dataset = datasets_service.get_dataset(name)
        pixels, shape = pixels_of(dataset, item_id)
    except (datasets_service.DatasetNotFound, NoImage):
        abort(404)
    response = make_response(png_of(pixels, shape))
    response.mimetype = "image/png"
    response.headers["Cache-Control"] = IMAGE_CACHE
    return response
