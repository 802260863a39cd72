"""The admins' users page: every login listed with its role, state and labels given; users created, disabled and
enabled, passwords reset and roles changed, each a POST (CSRF checked) recorded in the audit log by
labeler.data.users. A change that ends a user's sessions ends them in every browser."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from labeler.data import users
from labeler.store.db import User
from labeler.web.access import admin_required

bp = Blueprint("users", __name__, url_prefix="/admin/users")


def _page(error=None, status=200):
    """The users page; on an error, the one line above the forms and the create form's name and role kept."""
    return render_template("users.html", users=users.user_rows(), roles=User.ROLES, error=error,
                           form=request.form if error else {}), status


@bp.route("")
@admin_required
def index():
    return _page()


@bp.route("", methods=("POST",))
@admin_required
def create():
    """Create a user from the form's name, role and password; 400 with the policy's one line on bad input."""
    name, role = request.form.get("name", "").strip(), request.form.get("role", "")
    try:
        users.create_user(name, request.form.get("password", ""), role, by=current_user)
    except users.UserError as error:
        return _page(str(error), 400)
    return _done(f"User {name!r} created with role {role}.")


def _target(user_id):
    """The user ``user_id`` of the URL; 404 when there is none."""
    user = User.get_or_none(User.id == user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/<int:user_id>/disable", methods=("POST",))
@admin_required
def disable(user_id):
    user = _target(user_id)
    return _change(f"User {user.name!r} disabled; its sessions were ended.",
                   lambda: users.set_disabled(user.name, True, by=current_user))


@bp.route("/<int:user_id>/enable", methods=("POST",))
@admin_required
def enable(user_id):
    user = _target(user_id)
    return _change(f"User {user.name!r} enabled.", lambda: users.set_disabled(user.name, False, by=current_user))


@bp.route("/<int:user_id>/password", methods=("POST",))
@admin_required
def password(user_id):
    user = _target(user_id)
    return _change(f"Password of {user.name!r} reset; its sessions were ended.",
                   lambda: users.set_password(user.name, request.form.get("password", ""), by=current_user))


@bp.route("/<int:user_id>/role", methods=("POST",))
@admin_required
def role(user_id):
    user = _target(user_id)
    new_role = request.form.get("role", "")
    if new_role == user.role:
        return _done(f"User {user.name!r} is {new_role} already; nothing changed.")
    return _change(f"User {user.name!r} is now {new_role}; its sessions were ended.",
                   lambda: users.set_role(user.name, new_role, by=current_user))


def _change(message, apply):
    """Run ``apply()``; the page with ``message``, or with the UserError's one line (400)."""
    try:
        apply()
    except users.UserError as error:
        return _page(str(error), 400)
    return _done(message)


def _done(message):
    flash(message, "message")
    return redirect(url_for("users.index"), code=303)
