"""The analyst labeling screen: one item at a time, a decision posts and the next item comes back in one reply.
While the worker prepares the first queue, the page shows a component that polls and replaces itself."""
import datetime

from flask import Blueprint, render_template, request, session
from flask_login import current_user, login_required

from labeler.labeling import decisions, leases
from labeler.store.db import utcnow
from labeler.store.settings import labeling_settings
from labeler.web import screen
from labeler.web.access import dataset_or_404

bp = Blueprint("label", __name__)

# Item ids are SQLite integers (signed 64-bit): a larger number in the address matches no route (404) instead of
# overflowing in the store.
ITEM_ID = "int(max=9223372036854775807)"


def _session_start():
    """(when this login session started labeling, as naive UTC; the newest label id then), kept in the session
    cookie: the session's figures read only the labels after that id."""
    if "labeling_after" not in session:  # a cookie from before the id was kept starts its figures again
        session["labeling_since"] = utcnow().isoformat()
        session["labeling_after"] = decisions.latest_label_id()
    return datetime.datetime.fromisoformat(session["labeling_since"]), session["labeling_after"]


def _render(dataset, lease, outcome=None, error=None, status=200):
    """The workspace partial for htmx (with the session figures out of band), else the full page. Without an
    item, the worker's refill job that waits or runs (if one does) is shown: the partial then polls itself."""
    settings = labeling_settings(dataset)
    context = {
        "dataset": dataset,
        "view": screen.screen(dataset, lease, settings) if lease is not None else None,
        "preparing": leases.preparing(dataset) if lease is None else None,
        "refill_failed": leases.refill_trouble(dataset) if lease is None else None,
        "refill_cooldown": leases.REFILL_COOLDOWN_SECONDS,
        "outcome": outcome,
        "error": error,
        "recent": decisions.recent_decisions(dataset, current_user),
        "session_stats": decisions.session_stats(dataset, current_user, *_session_start()),
    }
    if request.headers.get("HX-Request"):
        return render_template("_label_workspace.html", oob=True, **context), status
    context["status"] = screen.dataset_status(dataset)
    return render_template("label.html", **context), status


@bp.route("/datasets/<name>/label")
@login_required
def show(name):
    """The labeling page, or (htmx) its workspace: the item on the analyst's screen, else the next free one."""
    dataset = dataset_or_404(name)
    _session_start()
    return _render(dataset, leases.next_item(dataset, current_user))


def _outcome_status(outcome):
    return 409 if outcome.kind in ("stale", "duplicate") else 200


def _rejected(dataset, error):
    """Bad input: the analyst's current item again with one line saying what was wrong (400)."""
    return _render(dataset, leases.next_item(dataset, current_user), error=str(error), status=400)


@bp.route(f"/datasets/<name>/label/<{ITEM_ID}:item_id>", methods=("POST",))
@login_required
def decide(name, item_id):
    dataset = dataset_or_404(name)
    try:
        outcome, lease = decisions.decide(dataset, current_user, item_id, request.form.get("decision"),
                                         reason=request.form.get("reason"), note=request.form.get("note"))
    except decisions.LabelingError as error:
        return _rejected(dataset, error)
    return _render(dataset, lease, outcome, status=_outcome_status(outcome))


@bp.route(f"/datasets/<name>/label/<{ITEM_ID}:item_id>/run", methods=("POST",))
@login_required
def decide_run(name, item_id):
    """One decision for this transaction and the later ones of its card up to ``through`` (card history)."""
    dataset = dataset_or_404(name)
    try:
        through = request.form.get("through", "")
        if not through.isdigit() or int(through) >= 2 ** 63:
            raise decisions.LabelingError(f"through: {through!r} is not a transaction")
        outcome, lease = decisions.decide_run(dataset, current_user, item_id, request.form.get("decision"),
                                              int(through), reason=request.form.get("reason"),
                                              note=request.form.get("note"))
    except decisions.LabelingError as error:
        return _rejected(dataset, error)
    return _render(dataset, lease, outcome, status=_outcome_status(outcome))


@bp.route(f"/datasets/<name>/label/<{ITEM_ID}:item_id>/skip", methods=("POST",))
@login_required
def skip(name, item_id):
    dataset = dataset_or_404(name)
    try:
        outcome, lease = decisions.skip(dataset, current_user, item_id)
    except decisions.LabelingError as error:
        return _rejected(dataset, error)
    return _render(dataset, lease, outcome, status=_outcome_status(outcome))


@bp.route("/datasets/<name>/label/undo", methods=("POST",))
@login_required
def undo(name):
    dataset = dataset_or_404(name)
    outcome, lease = decisions.undo(dataset, current_user)
    return _render(dataset, lease, outcome)


@bp.route(f"/datasets/<name>/label/<{ITEM_ID}:item_id>/edit", methods=("POST",))
@login_required
def edit(name, item_id):
    dataset = dataset_or_404(name)
    try:
        outcome, lease = decisions.edit(dataset, current_user, item_id, request.form.get("value"),
                                       reason=request.form.get("reason"))
    except decisions.LabelingError as error:
        return _rejected(dataset, error)
    return _render(dataset, lease, outcome, status=_outcome_status(outcome))


@bp.route("/datasets/<name>/label/status")
@login_required
def status(name):
    dataset = dataset_or_404(name)
    return render_template("_label_status.html", dataset=dataset, status=screen.dataset_status(dataset))
