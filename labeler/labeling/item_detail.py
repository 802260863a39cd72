"""Everything the item page shows about one item: the label that stands and how it was reached (the export's
rule, labeler.data.exporter.provenance), every decision on it (human, review and machine, undone ones marked),
why it waits for review if it does, and a raw transaction's card history."""
from peewee import JOIN

from labeler.data.exporter import HUMAN, MACHINE, provenance, standing_ids_of
from labeler.labeling import review
from labeler.labeling.history import card_history
from labeler.store.db import Label, Lease, User


def item_detail(dataset, item):
    """A dict for ``item`` of ``dataset``: ``decisions`` (review.Answer, oldest first: every human, review,
    pseudo and model decision), ``standing`` (the Label that stands, or None) and ``how`` (adjudicated, agreed,
    single, disputed, pseudo, model; None without a decision that stands or disputes), ``why`` (why it waits for
    review, None when it does not), ``history`` (labeler.labeling.history.card_history, None but for raw
    transactions) and ``blind`` (it waits for a blind second look: an analyst must not see its answers)."""
    view = review.item_review(dataset, item.id)
    decisions = sorted(view["answers"] + _machine_decisions(item.id), key=lambda answer: answer.label.id)
    retracted = {answer.label.id for answer in decisions if answer.retracted}
    standing_ids = standing_ids_of([item.id])
    standing_ids |= {label_id for (label_id,) in Label.latest(dataset, MACHINE, items=[item.id]).tuples()}
    labels = [answer.label for answer in decisions]
    human = [label for label in labels if label.source in HUMAN]
    if any(label.id not in retracted for label in human):
        labels = human  # a human answer wins over a machine label
    standing, how = provenance(labels, retracted, standing_ids)
    blind = (Lease.select().where((Lease.item == item.id) & ((Lease.state == "second") | Lease.second_look))
             .exists())
    return {"decisions": decisions, "standing": standing, "how": how, "why": view["why"],
            "history": card_history(dataset, item), "blind": blind}


def _machine_decisions(item_id):
    """The pseudo and model labels of ``item_id`` as review.Answer, oldest first, retracted ones marked."""
    rows = (Label.select(Label, User.name.alias("annotator_name"))
            .join(User, JOIN.LEFT_OUTER, on=(Label.annotator == User.id))
            .where((Label.item == item_id) & (Label.kind == "label") & Label.source.in_(MACHINE))
            .order_by(Label.id).objects())
    retracted = {row.retracts_id for row in Label.select(Label.retracts)
                 .where((Label.item == item_id) & Label.retracts.is_null(False))}
    return [review.Answer(row, row.annotator_name, row.id in retracted) for row in rows]
