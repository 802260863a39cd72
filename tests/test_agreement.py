"""The admin agreement page: Cohen's kappa per pair of analysts, the disagreements, following the model."""
import random

import pytest
from sklearn.metrics import cohen_kappa_score

from labeler.data import agreement
from labeler.labeling import decisions, leases
from labeler.store.db import Dataset, Item
from labeler.store.settings import labeling_settings, update_labeling_settings
from tests.conftest import csrf_token_of, login


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_kappa_and_disagreements(dataset, double_labeled):
    report = agreement.report(dataset)
    ana, bob = double_labeled["ana"], double_labeled["bob"]
    items = list(ana)
    expected = cohen_kappa_score([ana[i] for i in items], [bob[i] for i in items], labels=dataset.labels)
    [pair] = report["pairs"]
    assert (pair["first"], pair["second"], pair["shared"]) == ("ana", "bob", 12)
    assert pair["kappa"] == pytest.approx(expected)
    assert pair["agreement"] == pytest.approx(9 / 12)
    external = dict(Item.select(Item.id, Item.external_id).tuples())
    differing = {external[i] for i in items if ana[i] != bob[i]}
    assert report["disagreement_count"] == 3
    assert {row["external_id"] for row in report["disagreements"]} == differing
    assert report["double_labeled"] == 12


@pytest.mark.parametrize("seed", range(20))
def test_cohen_kappa_matches_scikit_learn(seed):
    rng = random.Random(seed)
    labels = ["genuine", "fraud", "unsure"][:rng.choice((2, 3))]
    n = rng.randint(1, 40)
    first = [rng.choice(labels) for _ in range(n)]
    second = [value if rng.random() < 0.7 else rng.choice(labels) for value in first]
    pairs = list(zip(first, second))
    observed = sum(a == b for a, b in pairs) / n
    kappa = agreement.cohen_kappa(pairs, observed)
    if len(set(first)) == len(set(second)) == 1 and first[0] == second[0]:
        assert kappa is None  # both gave one and the same label to everything: undefined
    else:
        assert kappa == pytest.approx(cohen_kappa_score(first, second, labels=labels))


def test_cohen_kappa_edge_cases():
    assert agreement.cohen_kappa([("fraud", "fraud")] * 5, 1.0) is None
    assert agreement.cohen_kappa([("a", "b"), ("b", "a")], 0.0) == pytest.approx(
        cohen_kappa_score(["a", "b"], ["b", "a"]))  # complete disagreement: -1
    pairs = [("a", "a"), ("b", "b"), ("a", "b")]
    assert agreement.cohen_kappa(pairs, 2 / 3) == pytest.approx(cohen_kappa_score(*zip(*pairs)))
    one_sided = [("a", "a"), ("a", "b")]  # one analyst always says a: chance agreement is a's share of the other
    assert agreement.cohen_kappa(one_sided, 0.5) == pytest.approx(cohen_kappa_score(*zip(*one_sided))) == 0.0


def test_an_undone_label_leaves_the_comparison(dataset, double_labeled):
    bob = double_labeled["bob_user"]
    outcome, _ = decisions.undo(dataset, bob)  # bob's last: the item ana called fraud and bob genuine
    assert outcome.kind == "undone"
    report = agreement.report(dataset)
    assert report["pairs"][0]["shared"] == 11 and report["disagreement_count"] == 2


def test_follow_the_model_rates(queued, analyst):
    dataset = queued
    update_labeling_settings(dataset, {"hide_suggestion_share": 1.0})
    lease = leases.next_item(dataset, analyst)
    for _ in range(4):  # suggestion hidden: ana answers the opposite of the (unseen) suggestion
        other = next(v for v in dataset.labels if v != lease.suggested)
        _, lease = decisions.decide(dataset, analyst, lease.item_id, f"label:{other}")
    update_labeling_settings(dataset, {"hide_suggestion_share": 0.0})
    _, lease = decisions.decide(dataset, analyst, lease.item_id, f"label:{lease.suggested}")  # leased while hidden
    for _ in range(3):
        _, lease = decisions.decide(dataset, analyst, lease.item_id, "accept")
    report = agreement.report(dataset)
    [(name, figures)] = report["follow"]
    assert name == "ana"
    assert figures == {"shown": 3, "shown_agree": 3, "hidden": 5, "hidden_agree": 1}
    assert report["overall"] == figures


def test_agreement_page_is_for_admins_only(client, dataset, analyst, admin):
    login(client, "ana")
    assert client.get("/admin/datasets/cc/agreement").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token_of(client.get("/").get_data(as_text=True))})
    login(client, "root")
    response = client.get("/admin/datasets/cc/agreement")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "No item has been labeled by two analysts yet" in html and "Labeling settings" in html
    assert client.get("/admin/datasets/nope/agreement").status_code == 404


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_agreement_page_lists_pairs_and_disagreements(client, dataset, double_labeled):
    login(client, "root")
    html = client.get("/admin/datasets/cc/agreement").get_data(as_text=True)
    kappa = agreement.report(dataset)["pairs"][0]["kappa"]
    assert "ana · bob" in html and f"{kappa:.3f}" in html and "75.0%" in html
    shared = agreement.report(dataset)["pairs"][0]["shared"]
    assert f'<td class="num">{shared}</td>' in html and "built-in method" not in html  # the items both labeled
    assert "Disagreements (3)" in html and html.count("ana: <b>") == 3


def test_settings_form_saves_and_refuses_bad_values(client, dataset, admin, analyst):
    login(client, "root")
    page = client.get("/admin/datasets/cc/agreement").get_data(as_text=True)
    token = csrf_token_of(page)
    form = {"csrf_token": token, "overlap_share": "0.2", "hide_suggestion_share": "0.1", "reject_mode": "requeue",
            "reason_codes": "card not present, <b>skimming</b>", "lease_minutes": "5", "skip_minutes": "2",
            "refill_below": "50"}
    response = client.post("/admin/datasets/cc/labeling-settings", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Settings saved: " in html and "overlap_share 0 → 0.2" in html
    settings = labeling_settings(Dataset.get_by_id(dataset.id))
    assert settings["overlap_share"] == 0.2 and settings["reason_codes"] == ["card not present", "<b>skimming</b>"]
    assert "&lt;b&gt;skimming&lt;/b&gt;" in response.get_data(as_text=True)
    response = client.post("/admin/datasets/cc/labeling-settings", data={**form, "overlap_share": "2"})
    assert response.status_code == 400 and "overlap_share must lie between 0 and 1" in response.get_data(as_text=True)
    assert labeling_settings(Dataset.get_by_id(dataset.id))["overlap_share"] == 0.2
    response = client.post("/admin/datasets/cc/labeling-settings", data={"overlap_share": "0.5"})
    assert response.status_code == 400  # no CSRF token
    assert labeling_settings(Dataset.get_by_id(dataset.id))["overlap_share"] == 0.2
    client.post("/logout", data={"csrf_token": token})
    login(client, "ana")
    assert client.post("/admin/datasets/cc/labeling-settings",
                       data={**form, "csrf_token": csrf_token_of(client.get("/").get_data(as_text=True))}
                       ).status_code == 403
