"""The datasets list and one dataset's paged table of items."""
from flask import Blueprint, abort, current_app, make_response, render_template, request
from flask_login import login_required

from labeler.data import datasets as datasets_service

bp = Blueprint("datasets", __name__)


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
    context = dict(dataset=dataset, items=items, page=page, pages=pages, total=total)
    # htmx restoring its history after a cache miss wants the whole page
    partial = request.headers.get("HX-Request") and not request.headers.get("HX-History-Restore-Request")
    response = make_response(render_template("_items.html" if partial else "dataset.html", **context))
    response.vary.add("HX-Request")
    return response
