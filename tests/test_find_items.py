"""Finding any item: the item page (values, image, the label that stands and how, every decision), opening an
item by its id, the item table's filters and sorts by keyset pages (checked against a pandas reading of the file,
and their SQLite query plans), readable numbers, and the links to item pages."""
import datetime
import logging
import re
from html import unescape

import numpy as np
import pandas as pd
import pytest

from labeler.data.images import import_images
from labeler.data.importer import import_file
from labeler.data import item_table
from labeler.data.item_table import BadQuery, TableQuery, parse_query, table_page
from labeler.labeling import decisions, leases, review
from labeler.store.db import Item, Label, SchemaVersion, User, database
from labeler.store.migrations import upgrade
from labeler.store.settings import update_labeling_settings
from labeler.web.readable import short_number
from tests.conftest import login

HX = {"HX-Request": "true"}
DAY = 86_400
START = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)


def _table(html):
    """(external ids of the rows, the next page's address or None) of an item table page."""
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    ids = [unescape(match) for match in re.findall(r'<tr>\s*<td><a href="[^"]*">([^<]*)</a></td>', body)]
    following = re.search(r'<a href="([^"]*)"[^>]*rel="next"', html)
    return ids, unescape(following.group(1)) if following else None


def _walk(client, url):
    """Every row id of the table from ``url`` on, following the next links (htmx partials)."""
    seen, pages = [], 0
    while url:
        response = client.get(url, headers=HX)
        assert response.status_code == 200
        ids, url = _table(response.get_data(as_text=True))
        seen += ids
        pages += 1
    return seen, pages


@pytest.fixture
def frame(small_csv):
    """The small sample as pandas reads it, with each row's id (its row number, as imported)."""
    frame = pd.read_csv(small_csv, dtype={"Class": str})
    frame["id"] = [str(position) for position in range(len(frame))]
    return frame


@pytest.fixture
def raw(app, tmp_path):
    """Raw transactions: 240 of 4 cards over 10 days, a channel and a free-text merchant (one with markup), an
    amount and a time column."""
    rng = np.random.default_rng(0)
    rows = []
    for n in range(240):
        when = START + datetime.timedelta(seconds=int(n * 3600 + rng.integers(0, 600)))
        merchant = "<b>Café</b> & Co" if n % 40 == 7 else f"shop {n % 13} {'Market' if n % 3 else 'market'}"
        rows.append({"tx": f"T{n:03d}", "timestamp": when.isoformat(), "card": f"C{n % 4}",
                     "merchant": merchant, "channel": "online" if n % 2 else "pos",
                     "amount": round(float(rng.gamma(2.0, 40.0)), 2) if n % 17 else 12.5})
    frame = pd.DataFrame(rows)
    path = tmp_path / "raw.csv"
    frame.to_csv(path, index=False)
    dataset = import_file(str(path), "tx", id_column="tx", time_column="timestamp", entity_columns=["card"]).dataset
    return dataset, frame


# ---------------------------------------------------------------------------------------------------------------
# The item page

@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_item_page_shows_the_standing_label_how_and_every_decision(client, dataset, double_labeled, admin):
    ana, bob = double_labeled["ana"], double_labeled["bob"]
    agreed = next(item for item in ana if ana[item] == bob[item] == "genuine")
    disputed = [item for item in ana if ana[item] != bob[item]]
    note = Label.create(item=agreed, value="genuine", annotator=User.get(User.name == "ana"), source="human",
                        note="<script>alert(1)</script>", reason="<i>why</i>")
    login(client, "root")
    external = Item.get_by_id(agreed).external_id
    html = client.get(f"/datasets/cc/items/{external}").get_data(as_text=True)
    standing = html.split("data-standing>", 1)[1].split("</p>", 1)[0]
    assert ">genuine</strong>" in standing and "(agreed)" in standing
    rows = html.split("data-decisions>", 1)[1].split("</table>", 1)[0].split("<tr")[2:]
    assert len(rows) == 3 and [re.search(r"<td>(ana|bob)</td>", row).group(1) for row in rows] == ["ana", "bob", "ana"]
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in rows[2]
    assert "&lt;i&gt;why&lt;/i&gt;" in rows[2] and "cold start" in rows[0] and "human" in rows[0]
    values = html.split("data-values>", 1)[1].split("</dl>", 1)[0]
    assert "<dt>Amount</dt>" in values and "data-review-link" not in html
    note.delete_instance()

    # a disputed item waits for review: a reviewer (here an admin) gets the link, an analyst neither it nor the page
    first = Item.get_by_id(disputed[0])
    html = client.get(f"/datasets/cc/items/{first.external_id}").get_data(as_text=True)
    assert "<strong>Disputed</strong>" in html and "waits for review: analysts disagree" in html
    assert f'href="/datasets/cc/review/{first.id}" data-review-link' in html
    review.adjudicate(dataset, admin, first.id, "fraud", note="settled")
    html = client.get(f"/datasets/cc/items/{first.external_id}").get_data(as_text=True)
    assert "(adjudicated)" in html and "data-review-link" not in html and "<td>review</td>" in html

    client.post("/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)})
    login(client, "ana")
    second = Item.get_by_id(disputed[1])
    html = client.get(f"/datasets/cc/items/{second.external_id}").get_data(as_text=True)
    assert "<strong>Disputed</strong>" in html and "data-review-link" not in html
    assert client.get(f"/datasets/cc/review/{second.id}").status_code == 403


def test_an_undone_decision_and_a_pseudo_label_are_in_the_history(client, queued, analyst):
    dataset = queued
    lease = leases.next_item(dataset, analyst)
    decisions.decide(dataset, analyst, lease.item_id, "label:fraud")
    decisions.undo(dataset, analyst)
    other = Item.select().where((Item.dataset == dataset) & (Item.id != lease.item_id)).first()
    Label.create(item=other, value="genuine", source="pseudo", suggested_probability=0.99)
    login(client, "ana")
    html = client.get(f"/datasets/cc/items/{Item.get_by_id(lease.item_id).external_id}").get_data(as_text=True)
    assert "No label yet." in html
    rows = html.split("data-decisions>", 1)[1].split("</table>", 1)[0].split("<tr")[2:]
    assert len(rows) == 1 and "data-undone" in rows[0] and "<td>undone</td>" in rows[0]
    html = client.get(f"/datasets/cc/items/{other.external_id}").get_data(as_text=True)
    assert ">genuine</strong>" in html and "(pseudo)" in html and "<td>pseudo</td>" in html


def test_answers_stay_hidden_from_analysts_while_a_blind_second_look_waits(client, queued, analyst, admin):
    dataset = queued
    update_labeling_settings(dataset, {"overlap_share": 1.0})
    lease = leases.next_item(dataset, analyst)
    decisions.decide(dataset, analyst, lease.item_id, "label:fraud", note="first answer")
    external = Item.get_by_id(lease.item_id).external_id
    login(client, "ana")
    html = client.get(f"/datasets/cc/items/{external}").get_data(as_text=True)
    assert "data-blind" in html and "first answer" not in html and "data-decisions" not in html
    login(client, "root")
    html = client.get(f"/datasets/cc/items/{external}").get_data(as_text=True)
    assert "data-blind" not in html and "first answer" in html


def test_the_item_page_of_a_raw_transaction_shows_readable_values_and_its_card(client, raw, analyst):
    dataset, frame = raw
    login(client, "ana")
    row = frame.iloc[30]
    html = client.get(f"/datasets/tx/items/{row.tx}").get_data(as_text=True)
    values = html.split("data-values>", 1)[1].split("</dl>", 1)[0]
    stamp = datetime.datetime.fromisoformat(row.timestamp).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f'<dd title="{row.timestamp}">{stamp}</dd>' in values
    history = html.split("data-history>", 1)[1].split("</section>", 1)[0]
    assert f"transactions ({row.card})" in history and 'aria-current="true"' in history
    neighbour = frame[(frame.card == row.card)].tx.tolist()
    position = neighbour.index(row.tx)
    assert f'href="/datasets/tx/items/{neighbour[position + 1]}"' in history
    odd = frame[frame.merchant.str.startswith("<b>")].iloc[0]
    html = client.get(f"/datasets/tx/items/{odd.tx}").get_data(as_text=True)
    assert "<b>Café</b>" not in html and "&lt;b&gt;Café&lt;/b&gt; &amp; Co" in html


def test_an_image_item_s_page_shows_the_image(client, analyst, tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "tiny.npz", X=rng.integers(0, 256, size=(6, 8, 8), dtype=np.uint8),
             ids=np.array(["a/1", "7.png", "..", "b", "c", "d"]))
    dataset = import_images(str(tmp_path / "tiny.npz"), "img").dataset
    login(client, "ana")
    item = Item.get((Item.dataset == dataset) & (Item.external_id == "a/1"))
    html = client.get("/datasets/img/items/a/1").get_data(as_text=True)
    assert f'src="/datasets/img/items/{item.id}.png"' in html and "data-item-image" in html
    # ids its path cannot carry as they are (a PNG address, "..") have their page at ?id=
    for external in ("7.png", ".."):
        table = client.get("/datasets/img").get_data(as_text=True)
        assert f'href="/datasets/img/items?id={external}"' in table
        page = client.get("/datasets/img/items", query_string={"id": external})
        assert page.status_code == 200 and f"Item {external} of" in page.get_data(as_text=True)


# ---------------------------------------------------------------------------------------------------------------
# Opening an item by its id

def test_open_by_id_redirects_to_the_item_page_and_an_unknown_id_is_one_line(client, dataset, analyst):
    login(client, "ana")
    opened = client.get("/datasets/cc/items", query_string={"id": " 17 "})
    assert opened.status_code == 303 and opened.headers["Location"] == "/datasets/cc/items/17"
    assert "Item 17 of" in client.get(opened.headers["Location"]).get_data(as_text=True)
    for target in ("/datasets/cc/items/<b>nope</b>", "/datasets/cc/items?id=%3Cb%3Enope%3C/b%3E"):
        response = client.get(target, follow_redirects=True)
        html = response.get_data(as_text=True)
        assert response.status_code == 404
        assert "no item &lt;b&gt;nope&lt;/b&gt; in dataset cc" in html and "<b>nope</b>" not in html
    assert client.get("/datasets/cc/items").headers["Location"] == "/datasets/cc"
    assert client.get("/datasets/nope/items/1").status_code == 404
    page = client.get("/datasets/cc").get_data(as_text=True)
    assert 'action="/datasets/cc/items"' in page and 'name="id"' in page


@pytest.mark.parametrize("url", ["/datasets/cc/items/1", "/datasets/cc/items?id=1", "/datasets/cc?label=fraud"])
def test_finding_needs_a_login(client, dataset, url):
    response = client.get(url)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_the_labeling_screen_opens_an_item_by_id_and_links_similar_items(client, queued, analyst):
    dataset = queued
    label_through_screen_ids = []
    lease = leases.next_item(dataset, analyst)
    for _ in range(3):
        label_through_screen_ids.append(lease.item_id)
        _, lease = decisions.decide(dataset, analyst, lease.item_id, "label:genuine")
    login(client, "ana")
    html = client.get("/datasets/cc/label").get_data(as_text=True)
    assert 'data-key="g /" data-opens="find-panel"' in html
    assert '<form id="find-panel" class="panel find" method="get" action="/datasets/cc/items" hidden>' in html
    assert "<kbd>g</kbd> <kbd>/</kbd></td><td>open an item by its id" in html
    similar = html.split('<section class="similar">', 1)[1].split("</section>", 1)[0]
    linked = re.findall(r'<a href="/datasets/cc/items/([^"]+)">', similar)
    external = {item.external_id for item in Item.select().where(Item.id.in_(label_through_screen_ids))}
    assert len(linked) == 3 and set(linked) == external


def test_the_agreement_page_links_disagreements_to_their_items(client, dataset, double_labeled, admin):
    login(client, "root")
    html = client.get("/admin/datasets/cc/agreement").get_data(as_text=True)
    for item, value in double_labeled["ana"].items():
        if double_labeled["bob"][item] != value:
            external = Item.get_by_id(item).external_id
            assert f'<td><a href="/datasets/cc/items/{external}">{external}</a></td>' in html


# ---------------------------------------------------------------------------------------------------------------
# Filters, sorts and keyset pages

@pytest.mark.slow  # seconds of work: the full tier runs it
@pytest.mark.parametrize("sort, order", [("row", "asc"), ("row", "desc"), ("amount", "asc"), ("amount", "desc")])
def test_keyset_pages_walk_every_row_once_in_order(client, dataset, analyst, frame, sort, order):
    login(client, "ana")
    seen, pages = _walk(client, f"/datasets/cc?sort={sort}&order={order}")
    rows = frame.assign(row=range(len(frame)))
    key = ["row"] if sort == "row" else ["Amount", "row"]
    expected = rows.sort_values(key, ascending=order == "asc", kind="stable")["id"].tolist()
    assert seen == expected and pages == -(-len(frame) // 50)


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_filters_match_a_pandas_reading(client, dataset, double_labeled, frame):
    login(client, "ana")
    ana, bob = double_labeled["ana"], double_labeled["bob"]
    external = dict(Item.select(Item.id, Item.external_id).tuples())
    agreed = {external[i]: v for i, v in ana.items() if bob[i] == v}
    disputed = {external[i] for i, v in ana.items() if bob[i] != v}

    def ids(query):
        return _walk(client, "/datasets/cc?" + query)[0]

    in_order = frame["id"].tolist()
    assert ids("label=fraud") == [i for i in in_order if agreed.get(i) == "fraud"]
    assert ids("label=genuine") == [i for i in in_order if agreed.get(i) == "genuine"]
    assert ids("label=disputed") == [i for i in in_order if i in disputed]
    unlabeled = ids("label=unlabeled")
    assert unlabeled == [i for i in in_order if i not in agreed and i not in disputed]
    assert ids("source=human") == [i for i in in_order if i in agreed]
    assert ids("source=review") == [] and ids("source=pseudo") == []
    decisions.undo(dataset, double_labeled["bob_user"])  # bob's last answer no longer stands
    last = external[list(bob)[-1]]
    assert ids("annotator=bob") == [i for i in in_order if i in {external[item] for item in bob} - {last}]
    assert set(ids("annotator=ana")) == {external[i] for i in ana}
    amounts = frame[(frame.Amount >= 10) & (frame.Amount <= 20.5)]
    assert ids("amount_min=10&amount_max=20.5") == amounts["id"].tolist()
    assert ids("amount_min=10&amount_max=20.5&sort=amount&order=desc") == \
        amounts.assign(row=range(len(amounts))).sort_values(["Amount", "row"], ascending=False)["id"].tolist()
    assert ids("label=genuine&amount_min=1000000") == []
    html = client.get("/datasets/cc?label=fraud").get_data(as_text=True)
    assert f"{len(ids('label=fraud'))} rows match" in html


def test_time_text_and_amount_filters_and_sorts_of_raw_transactions(client, raw, analyst):
    dataset, frame = raw
    login(client, "ana")
    frame = frame.assign(seconds=[datetime.datetime.fromisoformat(t).timestamp() for t in frame.timestamp])

    def ids(query):
        return _walk(client, "/datasets/tx?" + query)[0]

    low, high = START.timestamp() + 2 * DAY, START.timestamp() + 5 * DAY  # 3 to 5 March, whole days
    assert ids("time_from=2024-03-03&time_to=2024-03-05") == \
        frame[(frame.seconds >= low) & (frame.seconds < high)].tx.tolist()
    assert ids("sort=time&order=desc") == frame.sort_values("seconds", ascending=False, kind="stable").tx.tolist()
    assert ids("sort=amount") == frame.assign(row=range(len(frame))).sort_values(["amount", "row"]).tx.tolist()
    assert ids("column=channel&op=equals&text=pos") == frame[frame.channel == "pos"].tx.tolist()
    assert ids("column=channel&op=equals&text=PoS") == []
    contains = frame[frame.merchant.str.lower().str.contains("market")]
    assert ids("column=merchant&op=contains&text=MARKET") == contains.tx.tolist()
    assert len(contains) > 100  # several text pages: the filter walks past rows that do not match
    assert ids("column=merchant&text=%3Cb%3ECaf%C3%A9") == frame[frame.merchant.str.startswith("<b>Café")].tx.tolist()
    assert ids("column=merchant&op=equals&text=shop 1 Market&sort=amount&order=desc") == \
        frame[frame.merchant == "shop 1 Market"].sort_values("amount", ascending=False, kind="stable").tx.tolist()
    html = client.get("/datasets/tx?column=merchant&text=%3Cb%3E").get_data(as_text=True)
    assert "“&lt;b&gt;”" in html and 'value="&lt;b&gt;"' in html


@pytest.mark.parametrize("query, message", [
    ("label=maybe", "label: 'maybe' is none of genuine, fraud, disputed, unlabeled"),
    ("source=oracle", "source: 'oracle' is none of human, review, pseudo"),
    ("annotator=nobody", "annotator: no user named 'nobody'"),
    ("amount_min=lots", "amount_min: 'lots' is not a number"),
    ("amount_max=inf", "amount_max: 'inf' is not a finite number"),
    ("sort=time", "time: dataset cc has no time column"),
    ("sort=size", "sort: 'size' is none of row, amount, time"),
    ("order=up", "order: 'up' is neither asc nor desc"),
    ("text=x&column=Amount", "column: 'Amount' is not a text column of dataset cc (it has none)"),
    ("after=<b>", "after: '<b>' is not a sort key and an item id"),
    ("after=1,99999999999999999999", "after: '1,99999999999999999999' is not a sort key and an item id"),
])
def test_a_bad_filter_is_one_line(client, dataset, analyst, query, message):
    login(client, "ana")
    response = client.get("/datasets/cc?" + query)
    assert response.status_code == 400
    escaped = message.replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
    assert f'<p class="error" role="alert">{escaped}</p>' in response.get_data(as_text=True)


def test_bad_dates_and_operators_are_refused_by_the_service(raw):
    dataset, _ = raw
    with pytest.raises(BadQuery, match="time_from: '2024-13-01' is not a date"):
        parse_query(dataset, {"time_from": "2024-13-01"})
    with pytest.raises(BadQuery, match="op: 'like' is neither equals nor contains"):
        parse_query(dataset, {"column": "channel", "op": "like", "text": "x"})
    assert parse_query(dataset, {"sort": "time", "order": "desc"}) == TableQuery(sort="time", order="desc")


def test_rows_without_an_amount_come_last_either_way(app, tmp_path):
    (tmp_path / "gaps.csv").write_text("id,Amount,v\n" + "".join(
        f"r{n},{'' if n % 4 == 0 else n % 5},{n}\n" for n in range(23)))
    dataset = import_file(str(tmp_path / "gaps.csv"), "gaps", id_column="id", exclude=["Amount"]).dataset
    assert dataset.amount_column == "Amount"
    for order in ("asc", "desc"):
        seen, after = [], None
        while True:
            page = table_page(dataset, TableQuery(sort="amount", order=order, after=after), 4)
            seen += [item.external_id for item in page.items]
            after = page.next_after
            if after is None:
                break
        values = [(n % 5, n) for n in range(23) if n % 4]
        ordered = sorted(values, reverse=order == "desc")
        assert seen == [f"r{n}" for _, n in ordered] + [f"r{n}" for n in sorted(range(0, 23, 4),
                                                                                 reverse=order == "desc")]


def test_page_one_and_a_deep_page_read_an_index_range(dataset, double_labeled):
    """The SQLite query plans of the item table's queries: no page reads the item table whole, and the unfiltered
    and amount-sorted pages need no sort of their own (they follow an index from the page's start)."""
    statements = []

    class Grab(logging.Handler):
        def emit(self, record):
            sql = record.msg[0] if isinstance(record.msg, tuple) else ""
            if sql.startswith("SELECT") and 'FROM "item"' in sql.split("WHERE")[0]:
                statements.append(record.msg)

    logger, handler = logging.getLogger("peewee"), Grab()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        cases = [{}, {"after": "1500,1501"}, {"sort": "amount"},
                 {"sort": "amount", "order": "desc", "after": "7.5,900"},
                 {"amount_min": "5", "amount_max": "50", "sort": "amount", "after": "20,100"}]
        for args in cases:
            statements.clear()
            table_page(dataset, parse_query(dataset, args), 50)
            page_query = statements[0]
            plan = [row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + page_query[0], page_query[1])]
            index = r"SEARCH t1 USING (COVERING )?INDEX item_dataset_id_(row_number|amount_id) \(dataset_id=\?"
            assert any(re.match(index, step) for step in plan), (args, plan)
            assert not any(step.startswith("SCAN") for step in plan), (args, plan)
            assert not any("TEMP B-TREE FOR ORDER BY" in step for step in plan), (args, plan)
        for args in ({"label": "fraud"}, {"label": "unlabeled", "after": "1500,1501"}, {"annotator": "ana"}):
            statements.clear()
            table_page(dataset, parse_query(dataset, args), 50)
            for sql, params in list(statements):
                plan = [row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
                assert not any(re.match(r"SCAN (t1|item)\b", step) for step in plan), (args, plan)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_the_time_sorted_pages_follow_the_time_index(raw):
    dataset, _ = raw
    statements = []

    class Grab(logging.Handler):
        def emit(self, record):
            if isinstance(record.msg, tuple) and record.msg[0].startswith('SELECT "t1"."id"'):
                statements.append(record.msg)

    logger, handler = logging.getLogger("peewee"), Grab()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        table_page(dataset, TableQuery(sort="time", after=(START.timestamp() + 3 * DAY, 50)), 50)
    finally:
        logger.removeHandler(handler)
    plan = [row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + statements[0][0], statements[0][1])]
    index = "SEARCH t1 USING INDEX item_dataset_id_event_time_id (dataset_id=?"
    assert any(step.startswith(index) for step in plan), plan
    assert not any("TEMP B-TREE" in step or step.startswith("SCAN") for step in plan), plan


# ---------------------------------------------------------------------------------------------------------------
# Readable numbers and the stored amount

def test_the_table_shows_readable_numbers_with_the_full_value_in_a_title(client, dataset, analyst, frame):
    login(client, "ana")
    html = client.get("/datasets/cc").get_data(as_text=True)
    first = html.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    v1 = float(frame.V1[0])
    assert f'<td class="num" title="{v1!r}">{short_number(float(v1))}</td>' in first
    assert len(short_number(float(v1)).split(".")[1]) <= 4
    assert f'title="{float(frame.Amount[0])!r}">{frame.Amount[0]:,.2f}</td>' in first
    assert re.search(r"(?<![\d.])(?!0\.000)\d+\.\d{5,}<", html) is None  # no long floats shown in the table
    assert [short_number(v) for v in (3, 2.5, -0.00001234, 0.0, 1234567.891234, -0.00004)] == \
        ["3", "2.5", "-1.23e-05", "0", "1234567.8912", "-4e-05"]


def test_the_amount_is_stored_at_import_and_migration_13_fills_an_older_store(dataset, frame):
    stored = [amount for (amount,) in dataset.items().select(Item.amount).order_by(Item.row_number).tuples()]
    assert stored == frame.Amount.tolist()
    with database.atomic():
        database.execute_sql('DROP INDEX "item_dataset_id_amount_id"')
        database.execute_sql('DROP INDEX "item_dataset_id_event_time_id"')
        Item.update(amount=None).execute()
        SchemaVersion.delete().where(SchemaVersion.version >= 13).execute()
    assert upgrade() == [13, 14, 15, 16, 17, 18, 19]
    stored = [amount for (amount,) in dataset.items().select(Item.amount).order_by(Item.row_number).tuples()]
    assert stored == frame.Amount.tolist()
    indexes = {index.name for index in database.get_indexes("item")}
    assert {"item_dataset_id_amount_id", "item_dataset_id_event_time_id"} <= indexes and upgrade() == []


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_a_filters_count_stops_at_the_limit_and_says_more(client, dataset, frame, analyst, monkeypatch):
    login(client, "ana")
    amounts = frame[(frame.Amount >= 10) & (frame.Amount <= 20.5)]
    assert len(amounts) > 3
    monkeypatch.setattr(item_table, "COUNT_LIMIT", len(amounts))  # exactly at the limit: the true count
    page = table_page(dataset, parse_query(dataset, {"amount_min": "10", "amount_max": "20.5"}), 5)
    assert (page.matching, page.more) == (len(amounts), False)
    monkeypatch.setattr(item_table, "COUNT_LIMIT", 3)
    page = table_page(dataset, parse_query(dataset, {"amount_min": "10", "amount_max": "20.5"}), 5)
    assert (page.matching, page.more, len(page.items)) == (3, True, 5)
    html = client.get("/datasets/cc?amount_min=10&amount_max=20.5").get_data(as_text=True)
    assert "more than 3 rows match" in html
