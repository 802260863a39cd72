"""The review screen: items whose analysts disagree (and sampled fraud labels) one at a time, every answer
shown, the reviewer's decision with the same keys as the labeling screen. Plain forms: a decision posts,
then the next waiting item is shown (post, redirect, get)."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from labeler.labeling import review
from labeler.labeling.image_view import thumbnail_size
from labeler.web.access import dataset_or_404, reviewer_required
from labeler.web.label import ITEM_ID
from labeler.web.screen import headline_columns, label_keys

bp = Blueprint("review", __name__, url_prefix="/datasets/<name>/review")


@bp.route("")
@reviewer_required
def first(name):
    """The first item waiting for review (after ``?after=ID``, a skip), or a page saying nothing waits."""
    dataset = dataset_or_404(name)
    item_id = review.next_waiting(dataset, request.args.get("after", type=int))
    if item_id is None:
        return render_template("review.html", dataset=dataset, view=None, waiting=0)
    return redirect(url_for("review.item", name=name, item_id=item_id))


def _short(text):
    """A number written with more than four decimals, to four (the review screen's other values); else as is."""
    whole, dot, decimals = text.partition(".")
    if not dot or len(decimals) <= 4 or not (whole.lstrip("-").isdigit() and decimals.isdigit()):
        return text
    return f"{float(text):.4f}"


def _item_page(dataset, item_id, error=None, status=200):
    """The review page of ``item_id`` (404 for an item not in ``dataset``), with ``error`` above it."""
    try:
        view = review.item_review(dataset, item_id)
    except review.ReviewError:
        abort(404)
    values = dict(zip(dataset.columns, view["item"].display_values(dataset)))
    others = {value: [label for label in dataset.labels if label != value] for value in dataset.labels}
    headline = headline_columns(dataset)
    return render_template(
        "review.html", dataset=dataset, view=view, waiting=review.waiting_count(dataset), error=error,
        headline=[(column, values[column]) for column in headline],
        rest=[(column, _short(values[column])) for column in dataset.columns if column not in headline],
        others=others,
        label_keys=label_keys(dataset.labels), thumbnail=thumbnail_size(dataset)), status


@bp.route(f"/<{ITEM_ID}:item_id>")
@reviewer_required
def item(name, item_id):
    return _item_page(dataset_or_404(name), item_id)


@bp.route(f"/<{ITEM_ID}:item_id>", methods=("POST",))
@reviewer_required
def decide(name, item_id):
    """Record the reviewer's decision (``decision`` = label:LABEL, optional ``note``), then show the next
    waiting item; a bad decision is one line (400) on the same item, nothing recorded."""
    dataset = dataset_or_404(name)
    decision = request.form.get("decision", "")
    value = decision[len("label:"):] if decision.startswith("label:") else None
    try:
        if value is None:
            raise review.ReviewError(f"decision: {decision!r} is not label:LABEL")
        label, refused = review.adjudicate(dataset, current_user, item_id, value, request.form.get("note"))
    except review.ReviewError as error:
        return _item_page(dataset, item_id, error=str(error), status=400)
    if refused:
        flash(refused, "error")
    else:
        flash(f"Settled {dataset.item_noun} {label.item.external_id} as {value}.", "message")
    following = review.next_waiting(dataset)
    if following is None:
        return redirect(url_for("review.first", name=name), 303)
    return redirect(url_for("review.item", name=name, item_id=following), 303)


@bp.route("/undo", methods=("POST",))
@reviewer_required
def undo(name):
    """Take back the reviewer's latest decision and show its item again."""
    dataset = dataset_or_404(name)
    item_id = review.undo(dataset, current_user)
    if item_id is None:
        flash("Nothing to undo.", "message")
        return redirect(url_for("review.first", name=name), 303)
    flash("Your last decision was taken back; the item waits for review again.", "message")
    return redirect(url_for("review.item", name=name, item_id=item_id), 303)
