"""The web skeleton through Flask's test client: login, CSRF, htmx partials, escaping, ground truth kept out."""
import re

import pytest
from werkzeug.security import check_password_hash

from labeler.data.importer import import_file
from labeler.store.db import User
from tests.conftest import PASSWORD, csrf_token_of, login
from tests.test_import import store_snapshot


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csrf_protection_is_on_in_the_test_app(app):
    assert app.config["WTF_CSRF_ENABLED"] is True
    assert app.config["TESTING"] is True


def test_login_and_logout(client, analyst):
    stored = User.get(User.name == "ana").password_hash
    assert PASSWORD not in stored and check_password_hash(stored, PASSWORD)

    response = login(client, "ana")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and "ana (analyst)" in page.get_data(as_text=True)

    token = csrf_token_of(page.get_data(as_text=True))
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_replies_carry_the_time_spent_in_the_app(client, analyst):
    login(client, "ana")
    timing = client.get("/").headers["Server-Timing"]
    assert timing.startswith("app;dur=") and float(timing.split("=")[1]) > 0


def test_wrong_password_and_unknown_user_get_the_same_answer(client, analyst):
    wrong = login(client, "ana", "not the password")
    unknown = login(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401

    def without_token(response):  # a CSRF token is signed with the time, so it may differ between the two
        html = response.get_data(as_text=True)
        return html.replace(csrf_token_of(html), "TOKEN")

    assert without_token(wrong) == without_token(unknown)
    assert "Unknown user or wrong password." in wrong.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still logged out


@pytest.mark.parametrize("url", ["/", "/datasets/cc", "/datasets/cc?page=2"])
def test_pages_need_login(client, dataset, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_post_without_csrf_token_is_refused_and_changes_nothing(client, analyst, dataset):
    before = store_snapshot()
    response = client.post("/login", data={"name": "ana", "password": PASSWORD})
    assert response.status_code == 400
    assert "expired or was not sent by this page" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # not logged in

    login(client, "ana")
    response = client.post("/logout", data={})
    assert response.status_code == 400
    assert client.get("/").status_code == 200  # still logged in
    response = client.post("/logout", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert store_snapshot() == before


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "/\\evil.example/", "\\\\evil.example", "/\t/evil.example",
    "javascript:alert(1)", "evil.example",
])
def test_next_never_leaves_the_site(client, analyst, target):
    page = client.get("/login")
    response = client.post("/login", query_string={"next": target},
                           data={"name": "ana", "password": PASSWORD,
                                 "csrf_token": csrf_token_of(page.get_data(as_text=True))})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_follows_a_same_site_path(client, analyst, dataset):
    redirected = client.get("/datasets/cc?page=2")
    next_url = redirected.headers["Location"]
    page = client.get(next_url)
    response = client.post(next_url, data={"name": "ana", "password": PASSWORD,
                                           "csrf_token": csrf_token_of(page.get_data(as_text=True))})
    assert response.status_code == 302
    assert response.headers["Location"] == "/datasets/cc?page=2"


def test_dataset_page_full_or_htmx_partial(client, analyst, dataset):
    login(client, "ana")
    second = "/datasets/cc?after=49,50"  # the keyset page after row 49 (item 50)
    full = client.get(second)
    html = full.get_data(as_text=True)
    assert full.status_code == 200
    assert "<html" in html and '<section id="items">' in html and "2,041 rows" in html and "&laquo; First" in html

    partial = client.get(second, headers={"HX-Request": "true"})
    html = partial.get_data(as_text=True)
    assert partial.status_code == 200
    assert "<html" not in html and "<body" not in html
    assert html.lstrip().startswith('<section id="items">') and "&laquo; First" in html  # (counted on page 1 only)
    assert html.count("<tr>") == 1 + 50 and ">50</a></td>" in html and ">49</a></td>" not in html
    assert "HX-Request" in partial.headers.get("Vary", "")

    # htmx restoring history after a cache miss asks for the whole page
    restore = client.get(second, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)


def test_unknown_dataset_is_404(client, analyst):
    login(client, "ana")
    assert client.get("/datasets/nosuch").status_code == 404


def test_display_values_and_column_names_are_escaped(client, analyst, tmp_path):
    path = write(tmp_path / "xss.csv", 'note,"<i>col</i>",amount\n'
                 '"<script>alert(1)</script>",1,5\n'
                 'plain,2,6\n')
    import_file(path, "xss")
    login(client, "ana")
    for headers in ({}, {"HX-Request": "true"}):
        html = client.get("/datasets/xss", headers=headers).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<i>col</i>" not in html and "&lt;i&gt;col&lt;/i&gt;" in html


def test_ground_truth_is_not_on_any_page(client, analyst, tmp_path):
    path = write(tmp_path / "truth.csv", "Secret_Truth,v1,v2\n" + "".join(
        f"{'1' if n % 5 == 0 else '0'},{n}.25,{n * 3}\n" for n in range(30)))
    dataset = import_file(path, "cc", label_column="Secret_Truth").dataset
    assert dataset.columns == ["v1", "v2"]
    login(client, "ana")
    for url in ("/", "/datasets/cc"):
        assert "Secret_Truth" not in client.get(url).get_data(as_text=True)
    for headers in ({}, {"HX-Request": "true"}):
        html = client.get("/datasets/cc", headers=headers).get_data(as_text=True)
        header = html[html.index("<thead>"):html.index("</thead>")]
        assert header.count("<th>") == 5 and "pseudo-label</th>" in header  # id, v1, v2, label, by; pseudo-label
        rows = html[html.index("<tbody>"):html.index("</tbody>")].split("<tr>")[1:]
        assert len(rows) == 30
        cells = [re.sub(r"<[^>]*>", "", cell.split(">", 1)[1]).strip()
                 for cell in rows[0].split("</tr>")[0].split("<td")[1:]]
        assert cells == ["0", "0.25", "0", "", "", ""]  # row 0 is a fraud in the file: nothing shows it


# ---------------------------------------------------------------------------------------------------------------
# Security headers and the session cookie's Secure flag (issue 13, item 5)

def test_every_reply_carries_the_security_headers(client, analyst, dataset):
    replies = [client.get("/login"), client.get("/datasets/nope")]
    login(client, "ana")
    replies += [client.get("/"), client.get("/datasets/cc/label"),
                client.get("/datasets/cc/label", headers={"HX-Request": "true"}), client.get("/static/app.js")]
    for reply in replies:
        policy = reply.headers["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["default-src"] == directives["script-src"] == directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'" and "unsafe" not in policy
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Referrer-Policy"] == "same-origin"


def test_templates_need_no_inline_script_or_style():
    """What the policy forbids: inline script bodies, handler attributes, javascript: addresses, style
    attributes and elements; htmx's own inline indicator style is turned off by its config meta tag."""
    import glob
    import os
    import re

    from tests.conftest import ROOT

    for path in glob.glob(os.path.join(ROOT, "templates", "*.html")):
        text = open(path, encoding="utf-8").read()
        for script in re.findall(r"<script\b([^>]*)>(.*?)</script>", text, re.S):
            assert "src=" in script[0] and not script[1].strip(), path
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert "javascript:" not in text.lower() and "<style" not in text and not re.search(r"\sstyle\s*=", text), path
        assert not re.search(r"\shx-on", text) and "js:" not in text, path
    base = open(os.path.join(ROOT, "templates", "base.html"), encoding="utf-8").read()
    assert '"includeIndicatorStyles": false' in base


def test_the_session_cookie_is_secure_when_configured(tmp_path, monkeypatch):
    from labeler.config import Config
    from labeler.data.users import create_user
    from labeler.store.db import database
    from labeler.web import create_app

    assert Config.load(environ={}).SESSION_COOKIE_SECURE is False
    for value, secure in (("1", True), ("true", True), ("on", True), ("0", False), ("", False), ("no", False)):
        config = Config.load(environ={"LABELER_SECURE_COOKIES": value})
        assert config.SESSION_COOKIE_SECURE is secure
        assert config.environment().get("LABELER_SECURE_COOKIES") == ("1" if secure else None)
    with pytest.raises(ValueError, match="LABELER_SECURE_COOKIES"):
        Config.load(environ={"LABELER_SECURE_COOKIES": "maybe"})

    def session_cookie(secure, user):
        monkeypatch.setenv("LABELER_SECURE_COOKIES", "1" if secure else "0")
        app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "labeler.sqlite3"),
                          "TASK_QUEUE": str(tmp_path / "queue.sqlite3"), "MODEL_FOLDER": str(tmp_path / "models"),
                          "SECRET_KEY": "test-secret"})
        assert app.config["SESSION_COOKIE_SECURE"] is secure
        with database.connection_context():
            create_user(user, PASSWORD, "analyst")
            reply = login(app.test_client(), user)
        assert reply.status_code == 302
        return [cookie for cookie in reply.headers.getlist("Set-Cookie") if cookie.startswith("session=")][0]

    assert "Secure" in session_cookie(True, "ana")
    assert "Secure" not in session_cookie(False, "bob")
