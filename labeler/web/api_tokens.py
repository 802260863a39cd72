"""The API tokens page of every logged-in user: their tokens (name, prefix, scopes, created, last used,
revoked), a form that creates one (shown once, on the reply's page only) and a button that revokes one. The
admin scope is offered to admins only (labeler.data.tokens refuses it to others). Cookie-session forms, so CSRF
applies as on every other form."""
from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from labeler.data import tokens

bp = Blueprint("api_tokens", __name__)


def _page(status=200, **context):
    scopes = [scope for scope in tokens.SCOPES if scope != "admin" or current_user.is_admin]
    return render_template("tokens.html", tokens=tokens.tokens_of(current_user), scopes=scopes,
                           **context), status


@bp.route("/tokens")
@login_required
def index():
    return _page()


@bp.route("/tokens", methods=("POST",))
@login_required
def create():
    """Create a token from the form's name and scopes; the page shows it once (400 with one line, nothing
    stored, for a bad name or scope)."""
    try:
        token, clear = tokens.create_token(current_user, request.form.get("name"), request.form.getlist("scope"),
                                           actor=current_user)
    except tokens.TokenError as error:
        return _page(400, error=str(error))
    return _page(201, created=token, clear=clear)


@bp.route("/tokens/<int:token_id>/revoke", methods=("POST",))
@login_required
def revoke(token_id):
    """Revoke one of the user's own tokens (400 with one line for another's, an unknown one or one already
    revoked)."""
    try:
        token = tokens.revoke_token(str(token_id), current_user, actor=current_user)
    except tokens.TokenError as error:
        return _page(400, error=str(error))
    return _page(message=f"Token {token.prefix}… ({token.name}) revoked: it no longer works.")
