"""The JSON API under /api/v1: push transactions, pull label decisions since a cursor, one item with its label
history, a dataset's statistics, a job's state, and the OpenAPI document (labeler.web.openapi).

Every route but the document needs ``Authorization: Bearer <token>`` (labeler.data.tokens) with the route's
scope. The blueprint is exempt from CSRF because a cookie session never works here: a request without a token
is answered 401 whatever cookie it carries, so a page on another site cannot make a browser act through it.
Errors are JSON, ``{"error": "one line"}``, with their status.
"""
import functools

from flask import Blueprint, g, jsonify, request
from peewee import JOIN

from labeler.data import datasets as datasets_service
from labeler.data import exporter, tokens
from labeler.data.errors import ImportFailed
from labeler.data.push import parse_rows, push_rows
from labeler.data.transactions import has_history
from labeler.store.db import Item, Job, Label, User
from labeler.web.openapi import document
from labeler.worker import jobs

PREFIX = "/api/v1"
BODY_LIMIT = 32 << 20  # bytes of a push: about 60,000 credit-card rows as JSON
PAGE_LIMIT = 500  # label decisions per page by default
PAGE_MAX = 5000
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")

bp = Blueprint("api", __name__, url_prefix=PREFIX)


class ApiError(Exception):
    """An API request refused with ``status`` and one line."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


@bp.errorhandler(ApiError)
def _api_error(error):
    return error_reply(str(error), error.status)


@bp.record_once
def _json_method_errors(state):
    """A method a route does not take is answered as JSON under PREFIX too (routing fails before the blueprint's
    own handlers run); other paths keep the default page."""
    def method_not_allowed(error):
        if not request.path.startswith(PREFIX + "/"):
            return error
        response = error_reply(f"{request.method} is not allowed here", 405)
        response.headers["Allow"] = ", ".join(error.valid_methods or ())
        return response

    state.app.register_error_handler(405, method_not_allowed)


def error_reply(message, status):
    """The JSON error reply ``{"error": message}`` with ``status`` (401 asks for a bearer token)."""
    response = jsonify(error=message)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="labeler"'
    return response


def needs(scope):
    """Decorate a view: it runs only for a working bearer token with ``scope`` (401 without one or with an
    unknown or revoked token, 403 for another scope), kept in ``g.api_token``."""
    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            kind, _, presented = request.headers.get("Authorization", "").partition(" ")
            if kind.lower() != "bearer" or not presented.strip():
                raise ApiError("no token: send Authorization: Bearer <token> (create one with manage.py "
                               "create-token or on the API tokens page); a login cookie does not work here", 401)
            token = tokens.authenticate(presented.strip())
            if token is None:
                raise ApiError("unknown or revoked token, or its user is disabled", 401)
            if not tokens.has_scope(token, scope):
                raise ApiError(f"this token's scopes ({', '.join(token.scopes)}) do not include {scope!r}", 403)
            g.api_token = token
            return view(*args, **kwargs)
        return wrapped
    return decorate


def _dataset(name):
    try:
        return datasets_service.get_dataset(name)
    except datasets_service.DatasetNotFound as error:
        raise ApiError(str(error), 404) from None


def _body():
    """The request's body, at most BODY_LIMIT bytes. Raises ApiError 413 beyond."""
    if request.content_length is not None and request.content_length > BODY_LIMIT:
        raise ApiError(f"the body has {request.content_length:,} bytes, more than {BODY_LIMIT:,}: push smaller "
                       f"batches", 413)
    body = request.stream.read(BODY_LIMIT + 1)
    if len(body) > BODY_LIMIT:
        raise ApiError(f"the body is longer than {BODY_LIMIT:,} bytes: push smaller batches", 413)
    return body


@bp.route("/datasets/<name>/transactions", methods=("POST",))
@needs("write")
def push(name):
    """Append a JSON array of objects, or NDJSON (Content-Type application/x-ndjson), to the dataset, all or
    nothing and idempotent by id; queue the retrain (which scores the new rows) and the queue refill."""
    dataset = _dataset(name)
    ndjson = request.mimetype in NDJSON_TYPES
    if request.mimetype not in ("application/json", "", *NDJSON_TYPES):
        raise ApiError(f"Content-Type {request.mimetype!r}: send application/json (an array of objects) or "
                       f"application/x-ndjson (one object per line)", 415)
    try:
        result = push_rows(dataset, parse_rows(_body(), ndjson), g.api_token.user)
    except ImportFailed as error:
        raise ApiError(str(error)) from None
    reply = {"dataset": dataset.name, "received": result.rows_read, "added": result.rows_added,
             "already_present": result.rows_skipped, "jobs": {}}
    if result.rows_added:
        reason = f"{result.rows_added} rows pushed"
        kinds = [jobs.RETRAIN, jobs.REFILL] + ([jobs.SEQUENCES] if has_history(dataset.roles or {}) else [])
        reply["jobs"] = {kind: jobs.request(dataset, kind, reason)[0].id for kind in kinds}
    return jsonify(reply)


def _whole(name, text, default, low, high):
    """The query argument ``name`` as a whole number in [low, high] (``default`` when absent). Raises ApiError."""
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(f"{name} must be a whole number from {low} to {high}, not {text!r}")
    return int(text)


@bp.route("/datasets/<name>/labels")
@needs("read")
def labels(name):
    """Human label decisions (answers, adjudications and their undos) after the cursor ``after`` (a decision's
    ``cursor``; 0, the default, from the start), oldest first, at most ``limit``; each with the item's label
    that stands now. ``next`` is the cursor to ask from next time."""
    dataset = _dataset(name)
    after = _whole("after", request.args.get("after"), 0, 0, 2 ** 63 - 1)
    limit = _whole("limit", request.args.get("limit"), PAGE_LIMIT, 1, PAGE_MAX)
    # The label log is walked from the cursor in id order up to the page's end: the CROSS JOIN keeps SQLite from
    # walking every item of the dataset instead, and the source, as an expression, from reading every human
    # label through the (source, kind, id) index and sorting them
    rows = list(Label.select(Label, Item.external_id, User.name.alias("annotator_name"))
                .join(Item, JOIN.CROSS).where(Label.item == Item.id)
                .join(User, on=(Label.annotator == User.id), join_type=JOIN.LEFT_OUTER)
                .where((Item.dataset == dataset) & Label.source.concat("").in_(exporter.HUMAN) & (Label.id > after))
                .order_by(Label.id).limit(limit + 1).objects())
    more = len(rows) > limit
    rows = rows[:limit]
    now = exporter.item_labels(dataset, {row.item_id for row in rows})
    retracted = {label.id for _, history in now.values() for label, undone in history if undone}
    decisions = [{"cursor": row.id, "item": row.external_id, "undoes": row.retracts_id,
                  **exporter.decision(row, row.id in retracted), "now": now[row.item_id][0]} for row in rows]
    return jsonify(dataset=dataset.name, labels=decisions, next=rows[-1].id if rows else after, more=more)


@bp.route("/datasets/<name>/items/<path:external_id>")
@needs("read")
def item(name, external_id):
    """One item by its id: its values (numbers as numbers), the label that stands and how it was reached, and
    every label row on it, oldest first (machine labels too, undone ones marked)."""
    dataset = _dataset(name)
    found = Item.get_or_none((Item.dataset == dataset) & (Item.external_id == external_id))
    if found is None:
        raise ApiError(f"no item {external_id!r} in dataset {dataset.name!r}", 404)
    now, history = exporter.item_labels(dataset, [found.id], exporter.HUMAN + exporter.MACHINE)[found.id]
    return jsonify(dataset=dataset.name, id=found.external_id,
                   values=dict(zip(dataset.columns, found.typed_values(dataset))), now=now,
                   decisions=[{"cursor": label.id, **exporter.decision(label, undone)} for label, undone in history])


@bp.route("/datasets/<name>/stats")
@needs("read")
def stats(name):
    """The dataset's rows, features, roles and label counts (the ``stats`` command's figures); the ground truth's
    counts only for a token with the admin scope."""
    figures = datasets_service.stats(_dataset(name))
    if not tokens.has_scope(g.api_token, "admin"):
        figures.pop("ground_truth")
    return jsonify(figures)


@bp.route("/jobs/<int:job_id>")
@needs("read")
def job(job_id):
    """A worker job's kind, dataset, state, stage, percent done and error."""
    found = Job.get_or_none(Job.id == job_id)
    if found is None:
        raise ApiError(f"no job {job_id}", 404)
    dataset = found.dataset.name if found.dataset_id is not None else None
    return jsonify(id=found.id, kind=found.kind, dataset=dataset, state=found.state, stage=found.stage,
                   percent=found.percent, error=found.error, created_at=_stamp(found.created_at),
                   started_at=_stamp(found.started_at), finished_at=_stamp(found.finished_at))


def _stamp(moment):
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"


@bp.route("/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API (no token needed)."""
    return jsonify(document())
