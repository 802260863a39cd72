"""The datasets list, one dataset's item table (filtered and sorted, by keyset pages), an item's page (found by
its id), and an image item's picture and reconstruction as PNG."""
import re

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from labeler.data import datasets as datasets_service
from labeler.data import item_table
from labeler.labeling import decisions, review
from labeler.labeling.image_view import NoImage, image_view, item_pixels, reconstruction_pixels, thumbnail_size
from labeler.labeling.item_detail import item_detail
from labeler.labeling.leases import is_answered
from labeler.store.db import Item
from labeler.store.pool import pool_size
from labeler.store.settings import labeling_settings
from labeler.web.access import dataset_or_404
from labeler.web.images import png_of
from labeler.web.label import ITEM_ID
from labeler.web.readable import cells

bp = Blueprint("datasets", __name__)

IMAGE_CACHE = "private, max-age=3600"  # an item's pixels never change; a new reconstruction has a new address
# ids an item page's path cannot carry as they are: taken by the PNG addresses (7.png), or with empty, "." or ".."
# parts that browsers and the router rewrite; their page is at .../items?id=ID
_PATH_ID = re.compile(r"(?!\d+(\.png|/reconstruction\.png)\Z)[^/]+(/[^/]+)*\Z")


def _path_carries(external_id):
    """Whether the item page's path can carry ``external_id`` as it is."""
    return bool(_PATH_ID.match(external_id)) and not {".", ".."} & set(external_id.split("/"))


@bp.app_template_global()
def item_url(name, external_id):
    """The address of the page of item ``external_id`` of dataset ``name``."""
    if _path_carries(external_id):
        return url_for("datasets.item", name=name, external_id=external_id)
    return url_for("datasets.find", name=name, id=external_id)


@bp.route("/")
@login_required
def index():
    return render_template("datasets.html", summaries=datasets_service.summaries())


@bp.route("/datasets/<name>")
@login_required
def show(name):
    """The item table, filtered and sorted as the query string says (labeler.data.item_table), one keyset page;
    htmx gets the table alone. A bad filter is one line above the unfiltered table (400)."""
    dataset = dataset_or_404(name)
    error, status = None, 200
    try:
        query = item_table.parse_query(dataset, request.args)
    except item_table.BadQuery as bad:
        query, error, status = item_table.TableQuery(), str(bad), 400
    page = item_table.table_page(dataset, query, current_app.config["ITEMS_PER_PAGE"])
    context = dict(dataset=dataset, page=page, query=query, error=error, cells=cells,
                   annotators=item_table.annotators(dataset), thumbnail=thumbnail_size(dataset),
                   has_time=bool((dataset.roles or {}).get("time")))
    # htmx restoring its history after a cache miss wants the whole page
    partial = request.headers.get("HX-Request") and not request.headers.get("HX-History-Restore-Request")
    if not partial:
        unfiltered = page.matching is not None and not query.filtered
        context["total"] = page.matching if unfiltered else pool_size(dataset)
        if current_user.can_review:
            context["review_waiting"] = review.waiting_count(dataset)
    response = make_response(render_template("_items.html" if partial else "dataset.html", **context), status)
    response.vary.add("HX-Request")
    return response


@bp.route("/datasets/<name>/items")
@login_required
def find(name):
    """Open an item by its id (``?id=``): a redirect to its page, or the page itself for an id its address
    cannot carry; 404 with "no item X in dataset Y" for an unknown id; no id: the dataset's table."""
    dataset = dataset_or_404(name)
    external_id = (request.args.get("id") or "").strip()
    if not external_id:
        return redirect(url_for("datasets.show", name=name), 303)
    if not _path_carries(external_id):
        return _item_page(dataset, external_id)
    return redirect(item_url(name, external_id), 303)


@bp.route("/datasets/<name>/items/<path:external_id>")
@login_required
def item(name, external_id):
    return _item_page(dataset_or_404(name), external_id)


def _item_page(dataset, external_id, error=None, status=200):
    """The page of item ``external_id``: its values, image, the label that stands and how, every decision, its
    card's history, and a form to label it while no analyst's answer stands. An analyst does not see the answers
    while it waits for a blind second look. An unknown id is a 404 page of one line; ``error`` is said above the
    form."""
    try:
        found = item_table.find_item(dataset, external_id)
    except item_table.ItemNotFound as missing:
        return render_template("error.html", message=str(missing)), 404
    detail = item_detail(dataset, found)
    return render_template("item.html", dataset=dataset, item=found, detail=detail, cells=cells(dataset, found),
                           image=image_view(dataset, found), answered=is_answered(found.id), error=error,
                           reasons=labeling_settings(dataset)["reason_codes"],
                           hidden=detail["blind"] and not current_user.can_review), status


@bp.route(f"/datasets/<name>/items/<{ITEM_ID}:item_id>/label", methods=("POST",))
@login_required
def label_found(name, item_id):
    """Label an item found in the table (``value``, optional ``reason`` and ``note``), outside the queue; then
    its page again, saying what was recorded or why not (409); bad input is one line on the page (400)."""
    dataset = dataset_or_404(name)
    item = Item.get_or_none((Item.id == item_id) & (Item.dataset == dataset))
    if item is None:
        return render_template("error.html", message=f"dataset {dataset.name!r} has no item {item_id}"), 404
    try:
        outcome = decisions.label_found(dataset, current_user, item.id, request.form.get("value"),
                                        reason=request.form.get("reason"), note=request.form.get("note"))
    except decisions.LabelingError as error:
        return _item_page(dataset, item.external_id, error=str(error), status=400)
    if outcome.kind != "recorded":
        return _item_page(dataset, item.external_id, error=outcome.message, status=409)
    flash(outcome.message, "message")
    return redirect(item_url(name, item.external_id), 303)


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
