"""The sequence job on raw transactions (labeler.worker.sequences): a real Keras LSTM autoencoder trained by the
job lifecycle on the bundled simulated sample, its stored outputs read back with numpy alone, and the card
history that marks the steps which reconstruct worst and says in words what is unusual."""
import numpy as np
import pytest

from labeler.data.importer import import_file
from labeler.labeling.history import card_history, unusual_in_words
from labeler.store.artifacts import sequence_of
from labeler.store.db import Item, SequenceArtifacts
from labeler.worker import jobs
from tests.test_transactions import ROLES, write

FAST = {"epochs": 1, "fit_rows": 3_000}


@pytest.mark.slow
def test_the_sequence_job_stores_each_transactions_errors_and_the_history_marks_the_worst_steps(
        app, run_jobs, sample_lines, tmp_path):
    dataset = import_file(write(tmp_path, "tx.csv", sample_lines[:4001]), "tx", **ROLES).dataset
    job, _ = jobs.request(dataset, jobs.SEQUENCES, "test", options=FAST)
    assert run_jobs(dataset) == {job.id: "done"}
    record = SequenceArtifacts.get(SequenceArtifacts.dataset == dataset)
    assert (record.pool_rows, record.steps) == (4000, 10) and record.device
    assert "log amount" in record.step_names and record.details["fit_rows"] == 3_000
    ids = np.load(record.ids_path)
    errors, steps = np.load(record.error_path), np.load(record.step_error_path)
    latent = np.load(record.latent_path)
    assert errors.shape == (4000,) and steps.shape == (4000, 10) and latent.shape[0] == 4000
    assert np.all(np.isfinite(errors)) and np.all(np.isfinite(steps[:, -1]))
    items = {item.id: item for item in dataset.items()}
    first_of_card = {}
    for item in sorted(items.values(), key=lambda row: (row.event_time, row.id)):
        first_of_card.setdefault(item.entity, item.id)
    firsts = np.isin(ids, list(first_of_card.values()))
    assert np.all(np.isnan(steps[firsts, :-1]))  # a card's first transaction has no earlier step
    stored = sequence_of(dataset, int(ids[0]))
    assert stored["error"] == pytest.approx(float(errors[0]))
    assert np.array_equal(np.isnan(stored["steps"]), np.isnan(steps[0]))
    high = stored["step_high"]
    full = np.all(np.isfinite(steps), axis=1)
    assert high == pytest.approx(float(np.quantile(steps[full], 0.99)), rel=1e-5)

    from labeler.store.artifacts import stored_sequence_error
    from labeler.store.settings import engine_settings
    from labeler.worker.refill import cold_start_anomaly
    from models.learner import ActiveLearner
    from models.strategies import rank_union
    error = stored_sequence_error(dataset, ids[::-1])[::-1]  # any order of ids
    assert np.array_equal(np.isnan(error), ~full) and np.array_equal(error[full], errors[full].astype(np.float64))
    pool_ids = np.array(sorted(items), dtype=np.int64)
    learner = ActiveLearner(np.stack([items[i].feature_vector for i in pool_ids.tolist()]), pool_ids,
                            engine_settings(dataset))
    assert np.array_equal(cold_start_anomaly(dataset, pool_ids, learner), rank_union(learner.anomaly, error))

    itself = int(ids[np.flatnonzero(steps[:, -1] > high)[0]])  # the transaction's own step is among the worst
    rows = card_history(dataset, items[itself])["rows"]
    assert [row["current"] for row in rows if row["unusual"]] == [True] or sum(row["unusual"] for row in rows) > 1
    assert next(row for row in rows if row["current"])["unusual"]
    previous_worst = np.flatnonzero((steps[:, -2] > high) & (steps[:, -1] <= high))
    position = int(previous_worst[0])
    item = items[int(ids[position])]
    earlier = (Item.select().where((Item.dataset == dataset) & (Item.entity == item.entity)
                                   & (Item.event_time < item.event_time))
               .order_by(Item.event_time.desc(), Item.id.desc()).first())
    history = card_history(dataset, item)
    flagged = {row["id"] for row in history["rows"] if row["unusual"]}
    assert earlier.external_id in flagged and item.external_id not in flagged


def test_the_history_says_in_words_what_is_unusual(app, tmp_path):
    """Card C1 spends about 40 a day for a month, then makes four small payments at new merchants within four
    minutes and one of 900 half a minute later: the screen names the burst, the amount against the card's usual and the quick
    succession; a card's first transaction says so."""
    header = "tx,time,card,shop,amount"
    lines = [header] + [f"T{day},2024-05-{1 + day:02d}T12:00:00Z,C1,S{day % 3},{38 + day % 5}.00" for day in range(28)]
    lines += [f"B{n},2024-05-29T12:0{n}:00Z,C1,N{n},0.{n + 5}0" for n in range(4)]
    lines += ["BIG,2024-05-29T12:03:30Z,C1,N9,900.00", "NEW,2024-05-29T13:00:00Z,C2,S1,12.00"]
    dataset = import_file(write(tmp_path, "burst.csv", lines), "burst", id_column="tx", time_column="time",
                          entity_columns=["card", "shop"]).dataset
    big = Item.get(Item.external_id == "BIG")
    words = unusual_in_words(dataset, big)
    assert "5 transactions at shops new to this card within 10 min." in words
    assert any(line.startswith("Amount 2") and "x this card's usual" in line for line in words), words
    assert "30 s after this card's previous transaction." in words
    assert unusual_in_words(dataset, Item.get(Item.external_id == "NEW")) == ["The card's first transaction in 30 days."]
    assert unusual_in_words(dataset, Item.get(Item.external_id == "T20")) == []
    history = card_history(dataset, big)
    assert history["unusual"] == words and not any(row["unusual"] for row in history["rows"])  # no sequence job yet


def test_the_screen_says_what_is_unusual_above_the_cards_history(app, client, analyst, tmp_path):
    from labeler.store.db import Lease, utcnow
    from tests.conftest import login
    lines = ["tx,time,card,shop,amount"] + [f"T{day},2024-05-{1 + day:02d}T12:00:00Z,C1,S{day % 3},40.00"
                                             for day in range(28)]
    lines += ["BIG,2024-05-29T12:00:20Z,C1,N9,900.00"]
    dataset = import_file(write(tmp_path, "big.csv", lines), "big", id_column="tx", time_column="time",
                          entity_columns=["card", "shop"]).dataset
    big = Item.get(Item.external_id == "BIG")
    Lease.create(dataset=dataset, item=big, user=analyst, state="active", strategy="exploration", offered_at=utcnow(),
                 expires_at=utcnow().replace(year=2100), rejected=[])
    login(client, "ana")
    page = client.get("/datasets/big/label").get_data(as_text=True)
    assert f'data-item-id="{big.id}"' in page
    assert "<li>Amount 22x this card&#39;s usual (40.00 on average over 30 days).</li>" in page
