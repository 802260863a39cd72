"""The admin's settings page: every engine and labeling setting an admin may change, validated in one place
(labeler.store.settings.update_settings), stored together with its audit entry, and the audit log's page."""
import re

import pytest

from labeler.data import audit
from labeler.data.settings_changes import change_settings
from labeler.labeling import decisions, leases
from labeler.store.db import AuditEntry, Dataset, Job
from labeler.store.settings import (DEFAULTS, SettingsError, current_settings, engine_settings, labeling_settings,
                                    update_settings)
from labeler.worker import jobs
from tests.conftest import csrf_token_of, login

URL = "/admin/datasets/cc/settings"


def _token(client):
    return csrf_token_of(client.get(URL).get_data(as_text=True))


def _error_of(html):
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', html, re.S)
    return found and found.group(1)


def _stored(dataset):
    return Dataset.get_by_id(dataset.id).settings


@pytest.fixture
def root(client, dataset, admin, analyst):
    login(client, "root")
    return client


def test_the_page_shows_every_setting_with_its_current_value_and_default(root):
    html = root.get(URL).get_data(as_text=True)
    for field in ("retrain_every", "queue_size", "mix:high risk", "mix:uncertain", "mix:committee", "mix:exploration",
                  "uncertainty", "pseudo_labels", "pseudo_share", "pseudo_confidence", "generative_candidates",
                  "overlap_share", "hide_suggestion_share", "review_share", "reject_mode", "reason_codes",
                  "lease_minutes", "skip_minutes", "refill_below"):
        assert f'name="{field}"' in html, field
    assert "Retrain after this many new human labels" in html and 'value="50"' in html and "default 50" in html
    assert "committee: where models fitted on different draws of the labels disagree most" in html
    assert "cross-validated AUPRC under 0.5" in html
    assert "No entries yet." in html


def test_valid_changes_are_stored_and_audited_with_old_new_and_user(root, dataset, admin):
    form = {"csrf_token": _token(root), "retrain_every": "20", "queue_size": "500", "mix:high risk": "0.3",
            "mix:uncertain": "0.7", "mix:committee": "0", "mix:exploration": "0.1", "uncertainty": "entropy", "pseudo_labels": "False",
            "pseudo_share": "0.1", "pseudo_confidence": "0.99", "generative_candidates": ["", "latent", "sgan"],
            "overlap_share": "0.2", "review_share": "0.05", "reject_mode": "pick",
            "reason_codes": "card testing, skimming"}
    response = root.post(URL, data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and _error_of(html) is None
    assert "Settings saved: retrain_every 50 → 20;" in html and "pseudo_labels on → off" in html
    engine = engine_settings(Dataset.get_by_id(dataset.id))
    assert engine["retrain_every"] == 20 and engine["uncertainty"] == "entropy" and engine["pseudo_labels"] is False
    assert engine["mix"] == {"high risk": 0.3, "uncertain": 0.7, "committee": 0.0, "exploration": 0.1}
    assert engine["generative_candidates"] == ["latent", "sgan"] and engine["pseudo_share"] == 0.1
    labeling = labeling_settings(Dataset.get_by_id(dataset.id))
    assert labeling["review_share"] == 0.05 and labeling["reason_codes"] == ["card testing", "skimming"]
    [entry] = audit.entries(dataset)
    assert (entry.user_name, entry.action, entry.dataset_id) == ("root", audit.SETTINGS_CHANGED, dataset.id)
    changes = entry.details["changes"]
    assert changes["retrain_every"] == [50, 20] and changes["pseudo_labels"] == [True, False]
    assert changes["mix"] == [DEFAULTS["mix"], {"high risk": 0.3, "uncertain": 0.7, "committee": 0.0,
                                                "exploration": 0.1}]
    assert changes["generative_candidates"] == [[], ["latent", "sgan"]] and changes["overlap_share"] == [0.0, 0.2]
    # the values sent unchanged are neither stored nor audited
    assert not {"queue_size", "pseudo_confidence", "reject_mode"} & set(changes)
    assert "queue_size" not in _stored(dataset) and "reject_mode" not in _stored(dataset)["labeling"]
    assert "retrain_every: 50 → 20" in root.get(URL).get_data(as_text=True)  # the page's own log

    response = root.post(URL, data={"csrf_token": form["csrf_token"], "retrain_every": "20"})
    assert "nothing changed" in response.get_data(as_text=True) and len(audit.entries(dataset)) == 1
    response = root.post(URL, data={"csrf_token": form["csrf_token"], "generative_candidates": ""})  # none ticked
    assert response.status_code == 200 and engine_settings(Dataset.get_by_id(dataset.id))["generative_candidates"] == []


@pytest.mark.parametrize("field, value, named", [
    ("retrain_every", "soon", "retrain_every"), ("retrain_every", "0", "retrain_every"),
    ("retrain_every", "2.5", "retrain_every"), ("queue_size", "-3", "queue_size"),
    ("mix:high risk", "-1", "mix"), ("mix:high risk", "lots", "mix"), ("mix:dreaming", "0.5", "mix"),
    ("uncertainty", "guesswork", "uncertainty"), ("pseudo_labels", "maybe", "pseudo_labels"),
    ("pseudo_share", "1.5", "pseudo_share"), ("pseudo_share", "nan", "pseudo_share"),
    ("pseudo_confidence", "0.4", "pseudo_confidence"), ("generative_candidates", "dream", "generative_candidates"),
    ("reject_mode", "guess", "reject_mode"), ("overlap_share", "2", "overlap_share"),
    ("hide_suggestion_share", "-0.1", "hide_suggestion_share"), ("review_share", "inf", "review_share"),
    ("reason_codes", ",".join(f"code {n}" for n in range(10)), "reason_codes"),
    ("lease_minutes", "0", "lease_minutes"), ("skip_minutes", "later", "skip_minutes"),
    ("refill_below", "-1", "refill_below"),
])
@pytest.mark.slow  # seconds of work: the full tier runs it
def test_a_bad_value_is_refused_in_one_line_and_nothing_is_stored(root, dataset, field, value, named):
    before = _stored(dataset)
    form = {"csrf_token": _token(root), "retrain_every": "7", field: value}  # a good change beside the bad one
    response = root.post(URL, data=form)
    error = _error_of(response.get_data(as_text=True))
    assert response.status_code == 400 and error and "\n" not in error and named in error, error
    assert _stored(dataset) == before and AuditEntry.select().count() == 0


def test_all_shares_of_the_mix_at_zero_are_refused(root, dataset):
    form = {"csrf_token": _token(root), "mix:high risk": "0", "mix:uncertain": "0", "mix:committee": "0",
            "mix:exploration": "0"}
    response = root.post(URL, data=form)
    assert response.status_code == 400 and "mix: shares must be numbers" in _error_of(response.get_data(as_text=True))
    assert engine_settings(Dataset.get_by_id(dataset.id))["mix"] == DEFAULTS["mix"]


def test_an_analyst_gets_403(client, dataset, admin, analyst):
    login(client, "ana")
    token = csrf_token_of(client.get("/").get_data(as_text=True))
    assert client.get(URL).status_code == 403 and client.get("/admin/audit").status_code == 403
    assert client.post(URL, data={"csrf_token": token, "retrain_every": "2"}).status_code == 403
    assert engine_settings(Dataset.get_by_id(dataset.id))["retrain_every"] == 50 and AuditEntry.select().count() == 0


def test_a_change_without_the_csrf_token_is_refused(root, dataset):
    response = root.post(URL, data={"retrain_every": "2"})
    assert response.status_code == 400
    assert engine_settings(Dataset.get_by_id(dataset.id))["retrain_every"] == 50 and AuditEntry.select().count() == 0


def test_the_old_labeling_settings_address_saves_through_the_same_rules(root, dataset):
    response = root.post("/admin/datasets/cc/labeling-settings", data={"csrf_token": _token(root),
                                                                      "overlap_share": "0.3"})
    assert response.status_code == 200 and labeling_settings(Dataset.get_by_id(dataset.id))["overlap_share"] == 0.3
    assert audit.entries(dataset)[0].details["changes"] == {"overlap_share": [0.0, 0.3]}


def test_the_audit_page_lists_the_newest_entries_escaped(root, dataset, admin):
    root.post(URL, data={"csrf_token": _token(root), "reason_codes": "<script>alert(1)</script>"})
    audit.record(None, audit.EXPORTED, dataset, format="<b>csv</b>")
    html = root.get("/admin/audit").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "<b>csv" not in html
    assert "reason_codes: card not present, account takeover, card testing, friendly fraud, other → " \
           "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "format: &lt;b&gt;csv&lt;/b&gt;" in html and "command line" in html and "root" in html
    assert html.index(f"<td>{audit.EXPORTED}</td>") < html.index(f"<td>{audit.SETTINGS_CHANGED}</td>")  # newest first
    assert 'href="/admin/datasets/cc/settings">cc</a>' in html


def test_retrain_every_set_on_the_page_sets_when_a_retrain_is_queued(root, queued, analyst):
    root.post(URL, data={"csrf_token": _token(root), "retrain_every": "2"})
    dataset = Dataset.get_by_id(queued.id)

    def retrains():
        return Job.select().where((Job.dataset == dataset) & (Job.kind == jobs.RETRAIN)).count()

    lease = leases.next_item(dataset, analyst)
    outcome, lease = decisions.decide(dataset, analyst, lease.item_id, "label:genuine")
    assert retrains() == 0
    outcome, lease = decisions.decide(dataset, analyst, lease.item_id, "label:genuine")
    assert retrains() == 1 and jobs.latest(dataset, jobs.RETRAIN).payload["reason"] == "2 new labels"


def test_update_settings_takes_json_values_and_returns_what_changed(dataset):
    changed = update_settings(dataset, {"pseudo_labels": False, "generative_candidates": ["vae_balance"],
                                        "mix": {"exploration": 0.3}, "queue_size": 200.0, "refill_below": 50})
    assert changed == {"queue_size": [500, 200], "mix": [DEFAULTS["mix"], {**DEFAULTS["mix"], "exploration": 0.3}],
                       "pseudo_labels": [True, False], "generative_candidates": [[], ["vae_balance"]],
                       "refill_below": [100, 50]}
    assert current_settings(Dataset.get_by_id(dataset.id))["queue_size"] == 200
    for changes, message in (({"cv_folds": 3}, "unknown setting 'cv_folds'"), ({"pseudo_labels": 1.5}, "on or off"),
                             ({"mix": 0.5}, "mix must give a share"), ({"generative_candidates": [1]}, "list of names"),
                             ({"reason_codes": 5}, "reason_codes"), ({"retrain_every": True}, "retrain_every")):
        with pytest.raises(SettingsError, match=message):
            update_settings(dataset, changes)
    assert current_settings(Dataset.get_by_id(dataset.id))["queue_size"] == 200


def test_a_mix_stored_before_the_committee_gets_no_committee_picks(dataset):
    """A mix an admin stored before the committee strategy existed names three strategies: the committee's share
    is the default's, none; an admin may give it one."""
    dataset.settings = {**(dataset.settings or {}), "mix": {"high risk": 0.3, "uncertain": 0.6, "exploration": 0.1}}
    dataset.save()
    assert engine_settings(dataset)["mix"] == {"high risk": 0.3, "uncertain": 0.6, "committee": 0.0,
                                               "exploration": 0.1}
    update_settings(dataset, {"mix": {"committee": 0.3}})
    assert engine_settings(Dataset.get_by_id(dataset.id))["mix"] == {"high risk": 0.3, "uncertain": 0.6,
                                                                     "committee": 0.3, "exploration": 0.1}


def test_a_failed_audit_entry_takes_the_change_back(dataset, admin, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(OSError):
        change_settings(admin, dataset, {"retrain_every": 5})
    assert engine_settings(Dataset.get_by_id(dataset.id))["retrain_every"] == 50
