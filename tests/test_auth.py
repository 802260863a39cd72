"""Credentials and sessions: the password policy, sessions revoked on logout, password change and disabling, and
login throttling per user name and per address (on an injected clock), with password hashing one at a time."""
import datetime
import threading
import time

import pytest

from labeler.data import users
from labeler.data.users import (LoginRefused, UserError, authenticate, create_user, login, session_user,
                                set_disabled, set_password)
from labeler.store.db import LoginFailure, User
from tests.conftest import PASSWORD, csrf_token_of
from tests.conftest import login as web_login

T0 = datetime.datetime(2030, 1, 1, 12, 0, 0)


# --- password policy (item 9) -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, password, message", [
    ("dave", "12345678", "password must have at least 12 characters"),
    ("dave", " " * 8, "password must have at least 12 characters"),
    ("dave", "", "password must have at least 12 characters"),
    ("dave", None, "password must have at least 12 characters"),
    ("dave", " " * 12, "password must not be only spaces"),
    ("dave", "\t \n" * 4, "password must not be only spaces"),
    ("dave", "123456789012", "password must not be only digits"),
    ("dave", " 1234567890123 ", "password must not be only digits"),
    ("administrator", "Administrator", "password must not be the user name"),
])
def test_weak_passwords_are_refused_with_one_line(app, name, password, message):
    with pytest.raises(UserError) as refused:
        create_user(name, password)
    assert str(refused.value) == message
    assert User.select().count() == 0


def test_a_good_password_is_accepted_and_hashed(app):
    user = create_user("dave", PASSWORD)
    assert PASSWORD not in user.password_hash and authenticate("dave", PASSWORD).id == user.id


def test_set_password_applies_the_policy(app, analyst):
    with pytest.raises(UserError, match="password must have at least 12 characters"):
        set_password("ana", "12345678")
    with pytest.raises(UserError, match="no user 'bob'"):
        set_password("bob", "a long new passphrase")
    assert authenticate("ana", PASSWORD).id == analyst.id


# --- sessions revoked (item 4) ------------------------------------------------------------------------------

def _session_cookie(client):
    return client.get_cookie("session").value


def _logout(client):
    token = csrf_token_of(client.get("/").get_data(as_text=True))
    return client.post("/logout", data={"csrf_token": token})


def test_a_session_cookie_copied_before_logout_no_longer_works(app, analyst):
    client = app.test_client()
    web_login(client, "ana")
    stolen = _session_cookie(client)
    assert _logout(client).status_code == 302

    replay = app.test_client()
    replay.set_cookie("session", stolen)
    response = replay.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_logout_ends_the_users_other_sessions_too(app, analyst, admin):
    first, second, other = app.test_client(), app.test_client(), app.test_client()
    for client, name in ((first, "ana"), (second, "ana"), (other, "root")):
        web_login(client, name)
        assert client.get("/").status_code == 200
    _logout(first)
    assert second.get("/").status_code == 302
    assert other.get("/").status_code == 200  # another user's session is untouched
    web_login(second, "ana")
    assert second.get("/").status_code == 200  # logging in again works


def test_a_password_change_revokes_the_sessions(app, analyst):
    client = app.test_client()
    web_login(client, "ana")
    assert client.get("/").status_code == 200
    set_password("ana", "a brand new passphrase")
    assert client.get("/").status_code == 302
    assert web_login(client, "ana").status_code == 401
    assert web_login(client, "ana", "a brand new passphrase").status_code == 302


def test_disabling_a_user_revokes_its_sessions_and_refuses_its_logins(app, analyst):
    client = app.test_client()
    web_login(client, "ana")
    stolen = _session_cookie(client)
    set_disabled("ana")
    assert client.get("/").status_code == 302
    assert web_login(client, "ana").status_code == 401
    set_disabled("ana", False)
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert replay.get("/").status_code == 302  # enabling again does not revive old sessions
    assert web_login(client, "ana").status_code == 302


def test_session_ids_without_the_current_version_are_refused(app, analyst):
    assert session_user(analyst.get_id()).id == analyst.id
    assert analyst.get_id() == f"{analyst.id}:0"
    for stale in (str(analyst.id), f"{analyst.id}:1", f"{analyst.id}:x", "", None, "999:0", ":0"):
        assert session_user(stale) is None


# --- login throttling (item 3) ------------------------------------------------------------------------------

@pytest.fixture
def clock(monkeypatch):
    """The login clock, frozen at T0; ``clock.advance(seconds)`` moves it."""
    class Clock:
        now = T0

        def __call__(self):
            return self.now

        def advance(self, seconds):
            self.now += datetime.timedelta(seconds=seconds)

    frozen = Clock()
    monkeypatch.setattr(users, "clock", frozen)
    return frozen


@pytest.fixture
def hashes(monkeypatch):
    """Counts the password checks (each one costs a hash)."""
    count = []
    real = users.check_password_hash
    monkeypatch.setattr(users, "check_password_hash", lambda *args: count.append(1) or real(*args))
    return count


def test_five_failures_for_a_name_lock_it_out_without_hashing(app, analyst, hashes):
    for n in range(users.FAILURES_PER_NAME):
        assert login("ana", "wrong password", f"10.0.0.{n}", now=T0 + datetime.timedelta(seconds=n)) is None
    assert len(hashes) == 5
    with pytest.raises(LoginRefused) as refused:  # even the right password, from another address
        login("ana", PASSWORD, "10.0.1.1", now=T0 + datetime.timedelta(seconds=10))
    assert len(hashes) == 5  # refused without checking the password
    assert str(refused.value) == ("Too many failed logins for this user or from this address; try again after "
                                  "12:15:00 UTC (in 15 min).")
    assert refused.value.retry_after == 890
    # the oldest failure leaves the window at T0 + 15 min
    assert login("ana", PASSWORD, "10.0.1.1", now=T0 + datetime.timedelta(minutes=15)).id == analyst.id
    assert LoginFailure.select().where(LoginFailure.name == "ana").count() == 0  # success clears the name's


def test_unknown_names_are_throttled_too(app, hashes):
    for _ in range(users.FAILURES_PER_NAME):
        assert login("Nobody", "guess", "10.0.0.1", now=T0) is None
    with pytest.raises(LoginRefused):
        login("nobody", "guess", "10.0.0.2", now=T0)
    assert len(hashes) == 5


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_failures_from_one_address_lock_out_every_name_from_it(app, analyst, hashes):
    for n in range(users.FAILURES_PER_ADDRESS):
        assert login(f"guess{n}", "wrong password", "10.0.0.9", now=T0) is None
    with pytest.raises(LoginRefused):
        login("ana", PASSWORD, "10.0.0.9", now=T0)
    assert len(hashes) == users.FAILURES_PER_ADDRESS
    assert login("ana", PASSWORD, "10.0.0.10", now=T0).id == analyst.id  # other addresses are not affected


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_old_failures_are_forgotten_and_pruned(app, analyst):
    for n in range(4):
        login("ana", "wrong password", "10.0.0.1", now=T0)
    later = T0 + users.FAILURE_WINDOW + datetime.timedelta(seconds=1)
    for n in range(4):
        assert login("ana", "wrong password", "10.0.0.1", now=later) is None  # 4 + 4, but never 5 in 15 minutes
    assert LoginFailure.select().count() == 4  # the first four were pruned


def test_the_login_form_answers_429_with_when_to_retry(client, analyst, clock, hashes):
    for _ in range(users.FAILURES_PER_NAME):
        assert web_login(client, "ana", "wrong password").status_code == 401
    clock.advance(60)
    response = web_login(client, "ana")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == str(14 * 60)
    html = response.get_data(as_text=True)
    assert "try again after 12:15:00 UTC (in 14 min)." in html and 'role="alert"' in html
    assert len(hashes) == 5
    assert client.get("/").status_code == 302  # not logged in
    clock.advance(14 * 60)
    assert web_login(client, "ana").status_code == 302


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_login_form_throttles_per_client_address(app, analyst, clock):
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    for n in range(users.FAILURES_PER_ADDRESS):
        assert web_login(attacker, f"guess{n}", "wrong password").status_code == 401
    assert web_login(attacker, "ana").status_code == 429
    analyst_client = app.test_client()  # 127.0.0.1
    assert web_login(analyst_client, "ana").status_code == 302


def test_password_hashes_run_one_at_a_time(app, monkeypatch):
    running, most = [0], [0]
    lock = threading.Lock()

    def slow_check(*args):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return False

    monkeypatch.setattr(users, "check_password_hash", slow_check)
    threads = [threading.Thread(target=authenticate, args=("nobody", "guess")) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1


def test_a_login_that_cannot_get_its_turn_to_hash_is_refused_as_busy(client, analyst, monkeypatch):
    monkeypatch.setattr(users, "HASH_WAIT_SECONDS", 0.01)
    assert users._hashing.acquire(timeout=1)  # another login is hashing
    try:
        response = web_login(client, "ana")
    finally:
        users._hashing.release()
    assert response.status_code == 429 and response.headers["Retry-After"] == "5"
    assert "The server is busy checking other logins; try again in a few seconds." in response.get_data(as_text=True)
    assert web_login(client, "ana").status_code == 302
