"""The dashboard: every figure against a hand computation on a small known log, the windows and their buckets,
agreement as the agreement page computes it, a few thousand random rows against a plain Python reading of the
log, the SVG chart (well-formed, one bar and one point per bucket), escaping of names, and who sees what."""
import datetime
import random
import xml.etree.ElementTree as ElementTree

import pytest

from labeler.data import agreement, dashboards
from labeler.data.importer import import_file
from labeler.data.users import create_user
from labeler.store.db import Item, Label, utcnow
from labeler.web.dashboard import chart
from tests import test_postgres
from tests.conftest import PASSWORD, login

NOW = datetime.datetime(2024, 5, 10, 15, 30)
SVG = "{http://www.w3.org/2000/svg}"


def at(day, hour, minute=0):
    return datetime.datetime(2024, 5, day, hour, minute) if day > 0 else datetime.datetime(2024, 4, 30 + day, hour,
                                                                                             minute)


pg_app = test_postgres.pg_app  # the store on PostgreSQL, where LABELER_TEST_POSTGRES_URL names a server


def make_people(analyst, admin):
    return {"ana": analyst, "root": admin, "bob": create_user("bob", PASSWORD, "analyst"),
            "rev": create_user("rev", PASSWORD, "reviewer")}


@pytest.fixture
def people(app, analyst, admin):
    return make_people(analyst, admin)


@pytest.fixture
def known_log(dataset, people):
    return write_known_log(dataset, people)


def write_known_log(dataset, people):
    """A small log written directly: answers with and without a shown suggestion, an undone answer, a run's
    label (no seconds), answers outside the 7-day window, reviews (one undone). Returns the item ids used."""
    items = [item.id for item in Item.select(Item.id).where(Item.dataset == dataset).order_by(Item.id).limit(9)]
    ana, bob, rev = people["ana"], people["bob"], people["rev"]

    def label(user, item, value, when, seconds=None, suggested=None, shown=None, source="human"):
        return Label.create(item=items[item], kind="label", value=value, annotator=user, source=source,
                            created_at=when, seconds_on_screen=seconds, suggested=suggested, suggestion_shown=shown)

    label(ana, 1, "genuine", at(10, 15, 20), 4, "genuine", True)
    label(ana, 2, "fraud", at(10, 15, 25), 10, "genuine", True)
    label(ana, 3, "fraud", at(10, 13, 5), 6, "fraud", False)
    undone = label(ana, 4, "genuine", at(10, 13, 10), 2, "genuine", True)
    Label.create(item=items[4], kind="undo", retracts=undone, annotator=ana, source="human", created_at=at(10, 13, 11))
    label(ana, 5, "genuine", at(7, 10), 8)
    label(ana, 6, "fraud", at(0, 9), 5)  # 2024-04-30: outside 7 days, inside 30
    label(bob, 1, "genuine", at(10, 15, 10), 20, "genuine", True)
    label(bob, 2, "genuine", at(10, 14, 50), 30, "genuine", True)
    label(bob, 3, "fraud", at(9, 9), 12)
    label(bob, 7, "fraud", at(10, 15))  # a run's label: no seconds on screen, no suggestion
    label(rev, 2, "fraud", at(10, 15, 29), source="review")
    undone = label(rev, 8, "genuine", at(10, 15, 28), source="review")
    Label.create(item=items[8], kind="undo", retracts=undone, annotator=rev, source="review", created_at=at(10, 15, 29))
    return items


def rows_of(report):
    return {row["name"]: row for row in report["rows"]}


def test_every_figure_of_the_last_24_hours(dataset, people, known_log):
    check_the_last_24_hours(dashboards.dashboard(dataset, people["root"], "24h", now=NOW))


def test_the_same_figures_on_postgresql(pg_app, tmp_path):
    path = tmp_path / "small.csv"
    path.write_text(test_postgres.HEADER + test_postgres._rows(12))
    dataset = import_file(str(path), "pg", id_column="tx", label_column="Class").dataset
    people = make_people(create_user("ana", PASSWORD, "analyst"), create_user("root", PASSWORD, "admin"))
    write_known_log(dataset, people)
    check_the_last_24_hours(dashboards.dashboard(dataset, people["root"], "24h", now=NOW))
    week = dashboards.dashboard(dataset, people["root"], "7d", now=NOW)
    assert week["team"]["series"] == [0, 0, 0, 1, 0, 1, 6] and week["team"]["frauds_series"] == [0, 0, 0, 0, 0, 1, 2]


def check_the_last_24_hours(report):
    assert report["unit"] == "hour" and report["start"] == at(9, 16)
    assert report["buckets"][0] == at(9, 16) and report["buckets"][-1] == at(10, 15) and len(report["buckets"]) == 24
    rows = rows_of(report)
    assert list(rows) == ["ana", "bob", "rev"]
    ana, bob, rev, team = rows["ana"], rows["bob"], rows["rev"], report["team"]
    # ana: items 1, 2, 3 (item 4 undone; 5 and 6 too old); hours 13 and 15; two frauds; suggestion shown on 1, 2
    assert (ana["labels"], ana["active_hours"], ana["per_hour"], ana["frauds"]) == (3, 2, 1.5, 2)
    assert (ana["shown"], ana["followed"], ana["accept_rate"]) == (2, 1, 0.5)
    assert (ana["median_seconds"], ana["p90_seconds"]) == (6, 10)  # of 4, 6, 10: ranks 2 and 3
    # bob: items 1, 2 and the run's 7 (item 3 was labeled 30 hours ago); hours 14 and 15
    assert (bob["labels"], bob["active_hours"], bob["per_hour"], bob["frauds"]) == (3, 2, 1.5, 1)
    assert (bob["shown"], bob["followed"], bob["accept_rate"]) == (2, 2, 1.0)
    assert (bob["median_seconds"], bob["p90_seconds"]) == (20, 30)  # of 20, 30: ranks 1 and 2
    # kappa over items 1, 2, 3 (item 3: bob's answer is older, ana's falls in the window): g/g, f/g, f/f
    assert ana["pairs"] == bob["pairs"] == team["pairs"] == 3
    assert ana["kappa"] == bob["kappa"] == team["kappa"] == pytest.approx(0.4)  # (2/3 - 4/9) / (1 - 4/9)
    assert ana["agreement"] == pytest.approx(2 / 3)
    assert (ana["reviews"], bob["reviews"]) == (0, 0)
    assert (rev["labels"], rev["reviews"], rev["per_hour"], rev["kappa"], rev["median_seconds"]) == (0, 1, None,
                                                                                                     None, None)
    # the team: six labels over four analyst-hours; frauds are items 2, 3 and 7
    assert (team["labels"], team["active_hours"], team["per_hour"], team["frauds"]) == (6, 4, 1.5, 3)
    assert (team["shown"], team["followed"], team["accept_rate"], team["reviews"]) == (4, 3, 0.75, 1)
    assert (team["median_seconds"], team["p90_seconds"]) == (10, 30)  # of 4, 6, 10, 20, 30: ranks 3 and 5
    hours = {bucket.hour: index for index, bucket in enumerate(report["buckets"])}
    expected = {"ana": {13: 1, 15: 2}, "bob": {14: 1, 15: 2}}
    for name, counts in expected.items():
        assert rows[name]["series"] == [counts.get(bucket.hour, 0) for bucket in report["buckets"]]
    assert team["series"] == [{13: 1, 14: 1, 15: 4}.get(bucket.hour, 0) for bucket in report["buckets"]]
    assert team["frauds_series"][hours[13]] == 1 and team["frauds_series"][hours[15]] == 2
    assert sum(team["frauds_series"]) == 3 and rev["series"] == [0] * 24


def test_day_windows_and_their_buckets(dataset, people, known_log):
    week = dashboards.dashboard(dataset, people["root"], now=NOW)  # 7 days by default
    assert week["window"] == "7d" and week["unit"] == "day" and week["start"] == at(4, 0)
    assert week["buckets"] == [at(day, 0) for day in range(4, 11)]
    rows = rows_of(week)
    assert (rows["ana"]["labels"], rows["ana"]["active_hours"], rows["ana"]["frauds"]) == (4, 3, 2)
    assert rows["ana"]["series"] == [0, 0, 0, 1, 0, 0, 3]
    assert (rows["ana"]["median_seconds"], rows["ana"]["p90_seconds"]) == (6, 10)  # of 4, 6, 8, 10: ranks 2, 4
    assert (rows["bob"]["labels"], rows["bob"]["frauds"]) == (4, 2)
    assert rows["bob"]["series"] == [0, 0, 0, 0, 0, 1, 3]
    assert week["team"]["series"] == [0, 0, 0, 1, 0, 1, 6]
    assert week["team"]["frauds"] == 3
    assert week["team"]["frauds_series"] == [0, 0, 0, 0, 0, 1, 2]  # item 3 counts on its first fraud label, bob's

    month = dashboards.dashboard(dataset, people["root"], "30d", now=NOW)
    assert len(month["buckets"]) == 30 and month["buckets"][0] == at(-19, 0)  # 2024-04-11
    assert (rows_of(month)["ana"]["labels"], rows_of(month)["ana"]["frauds"], month["team"]["frauds"]) == (5, 3, 4)

    everything = dashboards.dashboard(dataset, people["root"], "all", now=NOW)
    assert everything["start"] is None
    assert everything["buckets"] == [at(0, 0)] + [at(day, 0) for day in range(1, 11)]  # from the first label's day
    assert everything["team"]["labels"] == sum(everything["team"]["series"]) == 9  # 5 of ana, 4 of bob


def test_an_empty_log_and_a_bad_window(dataset, people):
    report = dashboards.dashboard(dataset, people["root"], "all", now=NOW)
    assert report["rows"] == [] and report["buckets"] == [at(10, 0)]
    assert (report["team"]["labels"], report["team"]["per_hour"], report["team"]["kappa"]) == (0, None, None)
    with pytest.raises(dashboards.UnknownWindow, match="window: '1y' is not one of 24h, 7d, 30d, all"):
        dashboards.dashboard(dataset, people["root"], "1y", now=NOW)


def test_an_analyst_sees_the_team_and_their_own_row(dataset, people, known_log):
    report = dashboards.dashboard(dataset, people["bob"], "24h", now=NOW)
    assert [row["name"] for row in report["rows"]] == ["bob"] and report["everyone"] == 3
    assert report["team"]["labels"] == 6  # the team's figures are everyone's
    assert [row["name"] for row in dashboards.dashboard(dataset, people["rev"], "24h", now=NOW)["rows"]] == [
        "ana", "bob", "rev"]


def test_kappa_matches_the_agreement_page(dataset, double_labeled):
    report = dashboards.dashboard(dataset, double_labeled["bob_user"], "24h")
    [pair] = agreement.report(dataset)["pairs"]
    assert report["team"]["kappa"] == pytest.approx(pair["kappa"]) and report["team"]["pairs"] == 12
    assert report["rows"][0]["kappa"] == pytest.approx(pair["kappa"])
    assert report["team"]["labels"] == 24 and report["team"]["frauds"] == len(
        {item for name in ("ana", "bob") for item, value in double_labeled[name].items() if value == "fraud"})


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_a_few_thousand_random_rows_against_plain_python(dataset, people):
    rng = random.Random(7)
    items = [item_id for (item_id,) in Item.select(Item.id).where(Item.dataset == dataset).limit(600).tuples()]
    analysts = [people["ana"], people["bob"], people["rev"], create_user("cy", PASSWORD, "analyst")]
    rows, start = [], NOW - datetime.timedelta(days=12)
    for index in range(3000):
        who = rng.choice(analysts)
        shown = rng.choice((True, False, None))
        rows.append({"item": rng.choice(items), "kind": "label", "annotator": who.id, "source": "human",
                     "value": rng.choice(("genuine", "genuine", "fraud")),
                     "created_at": start + datetime.timedelta(minutes=rng.randrange(12 * 24 * 60)),
                     "seconds_on_screen": rng.choice((None, round(rng.uniform(0.5, 90), 1))),
                     "suggested": None if shown is None else rng.choice(("genuine", "fraud")),
                     "suggestion_shown": shown})
    Label.insert_many(rows).execute()
    labels = list(Label.select().order_by(Label.id))
    undone = rng.sample(labels, 300)
    Label.insert_many([{"item": label.item_id, "kind": "undo", "retracts": label.id, "annotator": label.annotator_id,
                        "source": "human", "created_at": NOW} for label in undone]).execute()
    undone_ids = {label.id for label in undone}
    standing = [label for label in labels if label.id not in undone_ids]
    on_item = {}
    for label in standing:
        on_item.setdefault(label.item_id, []).append(label)
    report = dashboards.dashboard(dataset, people["root"], "7d", now=NOW)
    since = report["start"]
    inside = [label for label in standing if label.created_at >= since]
    by_name = rows_of(report)
    for user in analysts:
        mine = [label for label in inside if label.annotator_id == user.id]
        row = by_name[user.name]
        assert row["labels"] == len(mine)
        assert row["active_hours"] == len({label.created_at.replace(minute=0, second=0, microsecond=0)
                                           for label in mine})
        assert row["frauds"] == sum(label.value == "fraud" for label in mine)
        shown = [label for label in mine if label.suggestion_shown]
        assert (row["shown"], row["followed"]) == (len(shown), sum(label.value == label.suggested for label in shown))
        seconds = sorted(label.seconds_on_screen for label in mine if label.seconds_on_screen is not None)
        assert (row["median_seconds"], row["p90_seconds"]) == (seconds[-(-len(seconds) * 50 // 100) - 1],
                                                               seconds[-(-len(seconds) * 90 // 100) - 1])
        assert row["series"] == [sum(label.created_at.date() == bucket.date() for label in mine)
                                 for bucket in report["buckets"]]
        pairs = [(label.value, other.value) for label in standing if label.annotator_id == user.id
                 for other in on_item[label.item_id] if other.annotator_id != user.id
                 and max(label.created_at, other.created_at) >= since]
        assert row["pairs"] == len(pairs)
        assert row["kappa"] == pytest.approx(agreement.cohen_kappa(pairs, sum(a == b for a, b in pairs) / len(pairs)))
    assert report["team"]["labels"] == len(inside)
    assert report["team"]["frauds"] == len({label.item_id for label in inside if label.value == "fraud"})


def test_the_chart_has_a_bar_and_a_point_per_bucket(dataset, people, known_log):
    report = dashboards.dashboard(dataset, people["root"], "7d", now=NOW)
    geometry = chart(report)
    assert len(geometry["bars"]) == 7 and [line["name"] for line in geometry["lines"]] == ["ana", "bob"]
    assert all(len(line["points"]) == 7 for line in geometry["lines"]) and len(geometry["frauds"]["points"]) == 7
    assert geometry["peak"] == 6 and geometry["y_ticks"][0] == (geometry["bottom"], 0)
    assert max(value for _, value in geometry["y_ticks"]) >= 6
    tallest = max(geometry["bars"], key=lambda bar: bar["count"])
    assert tallest["count"] == 6 and tallest["y"] >= geometry["top"]
    assert [text for _, text in geometry["x_labels"]] == [f"05-{day:02d}" for day in range(4, 11)]
    hourly = chart(dashboards.dashboard(dataset, people["root"], "24h", now=NOW))
    assert [text for _, text in hourly["x_labels"]][-1] == "15:00" and len(hourly["x_labels"]) <= 10


def _svg(html):
    start = html.index('<svg xmlns="http://www.w3.org/2000/svg"')
    return ElementTree.fromstring(html[start:html.index("</svg>", start) + len("</svg>")])


def test_the_page_draws_the_chart_and_the_table(client, dataset, people):
    now = utcnow()
    item_ids = [item_id for (item_id,) in Item.select(Item.id).where(Item.dataset == dataset).limit(5).tuples()]
    for index, item_id in enumerate(item_ids):
        Label.create(item=item_id, value="fraud" if index < 2 else "genuine", annotator=people["ana"], source="human",
                     created_at=now - datetime.timedelta(days=index), seconds_on_screen=3.0 + index)
    login(client, "root")
    page = client.get(f"/datasets/{dataset.name}/dashboard")
    assert page.status_code == 200 and "HX-Request" in page.headers["Vary"]
    html = page.get_data(as_text=True)
    assert "<html" in html and 'aria-current="page">the last 7 days' in html
    svg = _svg(html)
    assert svg.get("role") == "img" and svg.find(f"{SVG}title").text.startswith("Labels per day on cc")
    assert svg.find(f"{SVG}desc") is not None
    bars = [rect for rect in svg.iter(f"{SVG}rect") if rect.get("class") == "team-bar"]
    assert len(bars) == 7 and [bar.find(f"{SVG}title").text.split(": ")[1] for bar in bars] == [
        "0 team labels"] * 2 + ["1 team labels"] * 5
    [line] = [group for group in svg.iter(f"{SVG}g") if group.get("class") == "analyst-line"]
    assert line.get("data-name") == "ana" and len(line.find(f"{SVG}polyline").get("points").split()) == 7
    assert len(line.findall(f"{SVG}circle")) == 7
    [frauds] = [group for group in svg.iter(f"{SVG}g") if group.get("class") == "fraud-line"]
    assert len(frauds.find(f"{SVG}polyline").get("points").split()) == 7
    assert '<tr data-user="ana">' in html and 'class="team"' in html

    partial = client.get(f"/datasets/{dataset.name}/dashboard?window=24h", headers={"HX-Request": "true"})
    body = partial.get_data(as_text=True)
    assert partial.status_code == 200 and "<html" not in body and body.lstrip().startswith('<div id="dashboard"')
    assert len([rect for rect in _svg(body).iter(f"{SVG}rect") if rect.get("class") == "team-bar"]) == 24
    everything = client.get(f"/datasets/{dataset.name}/dashboard?window=all").get_data(as_text=True)
    assert len([rect for rect in _svg(everything).iter(f"{SVG}rect") if rect.get("class") == "team-bar"]) == 5
    assert client.get(f"/datasets/{dataset.name}/dashboard?window=year").status_code == 400
    assert client.get("/datasets/nope/dashboard").status_code == 404
    assert "/dashboard" in client.get(f"/datasets/{dataset.name}").get_data(as_text=True)


def test_names_are_escaped_in_the_table_and_the_chart(client, dataset, admin):
    name = """<b>O'Neil & "co"</b>"""
    odd = create_user(name, PASSWORD, "analyst")
    item_id = Item.select(Item.id).where(Item.dataset == dataset).first().id
    Label.create(item=item_id, value="fraud", annotator=odd, source="human", created_at=utcnow())
    login(client, "root")
    html = client.get(f"/datasets/{dataset.name}/dashboard").get_data(as_text=True)
    assert name not in html and "<b>O" not in html
    assert "&lt;b&gt;O&#39;Neil &amp; &#34;co&#34;&lt;/b&gt;" in html
    svg = _svg(html)  # parses: nothing unescaped inside
    [line] = [group for group in svg.iter(f"{SVG}g") if group.get("class") == "analyst-line"]
    assert line.get("data-name") == name and line.find(f"{SVG}polyline").find(f"{SVG}title").text == name


def test_who_sees_what(app, client, dataset, people, known_log):
    now = utcnow()
    for user, item_id in ((people["ana"], known_log[1]), (people["bob"], known_log[2])):
        Label.create(item=item_id, value="genuine", annotator=user, source="human", created_at=now)
    assert client.get(f"/datasets/{dataset.name}/dashboard").status_code == 302  # to the login page
    login(client, "ana")
    html = client.get(f"/datasets/{dataset.name}/dashboard").get_data(as_text=True)
    assert '<tr data-user="ana">' in html and 'data-user="bob"' not in html and 'data-name="bob"' not in html
    assert "You see the team's figures and your own row" in html
    reviewer = app.test_client()
    login(reviewer, "rev")
    html = reviewer.get(f"/datasets/{dataset.name}/dashboard").get_data(as_text=True)
    assert '<tr data-user="ana">' in html and '<tr data-user="bob">' in html and 'data-name="bob"' in html
    assert "You see the team's figures" not in html
