"""Agreement between analysts and with the model: Cohen's kappa per pair, the disagreements, and how often
analysts follow the suggestion when they see it compared with how often they agree with it when it is hidden."""
import itertools
from collections import Counter

from labeler.store.db import Item, Label, User

DISAGREEMENTS_SHOWN = 200


def standing_by_annotator(dataset):
    """{item id: {annotator name: Label}}: each analyst's own latest label per item that no undo retracts."""
    retracted = {row[0] for row in Label.select(Label.retracts).join(Item, on=(Label.item == Item.id))
                 .where((Item.dataset == dataset) & Label.retracts.is_null(False)).tuples()}
    rows = (Label.select(Label).join(Item)
            .where((Item.dataset == dataset) & (Label.kind == "label") & (Label.source == "human")
                   & Label.annotator.is_null(False))
            .order_by(Label.id))
    names = dict(User.select(User.id, User.name).tuples())
    result = {}
    for label in rows:
        if label.id not in retracted:
            result.setdefault(label.item_id, {})[names[label.annotator_id]] = label
    return result


def pairwise(dataset, by_item):
    """One dict per pair of analysts who labeled common items: names, n, raw agreement, kappa (None when
    undefined, e.g. both gave one and the same label to everything)."""
    annotators = sorted({name for labels in by_item.values() for name in labels})
    pairs = []
    for first, second in itertools.combinations(annotators, 2):
        common = [(labels[first].value, labels[second].value) for labels in by_item.values()
                  if first in labels and second in labels]
        if not common:
            continue
        agreement = sum(x == y for x, y in common) / len(common)
        pairs.append({"first": first, "second": second, "shared": len(common), "agreement": agreement,
                      "kappa": cohen_kappa(common, agreement)})
    return pairs


def cohen_kappa(pairs, observed):
    """Cohen's kappa of the label pairs ``pairs`` whose share of equal pairs is ``observed``: (observed - chance)
    / (1 - chance), chance being the agreement expected from each analyst's label frequencies; None when chance
    is 1 (both gave one and the same label to everything). Matches sklearn.metrics.cohen_kappa_score, computed
    here so that the web process needs no scikit-learn."""
    return _kappa(Counter(a for a, _ in pairs), Counter(b for _, b in pairs), len(pairs), observed)


def table_kappa(table):
    """(pairs, raw agreement, Cohen's kappa) of a contingency table {(first's label, second's label): count} of
    at least one pair, the figures cohen_kappa computes from the pairs themselves (for counts grouped in the
    database); kappa None when undefined."""
    n = sum(table.values())
    first, second = Counter(), Counter()
    for (a, b), count in table.items():
        first[a] += count
        second[b] += count
    observed = sum(count for (a, b), count in table.items() if a == b) / n
    return n, observed, _kappa(first, second, n, observed)


def _kappa(first, second, n, observed):
    """Kappa from each analyst's label counts ``first`` and ``second`` over ``n`` pairs with agreement ``observed``."""
    chance = sum(count * second[label] for label, count in first.items()) / n ** 2
    return None if chance >= 1 else (observed - chance) / (1 - chance)


def adjudications(dataset):
    """{item id: (label, reviewer name)} of the standing review decisions of ``dataset``."""
    rows = (Label.select(Label.item, Label.value, User.name).join(User, on=(Label.annotator == User.id))
            .where(Label.id.in_(Label.latest(dataset, ("review",)))).tuples())
    return {item_id: (value, name) for item_id, value, name in rows}


def disagreements(by_item, settled=None, limit=DISAGREEMENTS_SHOWN):
    """(rows, total): items whose analysts gave different labels, newest first, each {item_id, external_id,
    labels, settled: (label, reviewer) or None} (``settled``: adjudications' result)."""
    settled = settled or {}
    rows = []
    for item_id, labels in by_item.items():
        if len({label.value for label in labels.values()}) > 1:
            rows.append((max(label.id for label in labels.values()), item_id, labels))
    rows.sort(reverse=True)
    external = dict(Item.select(Item.id, Item.external_id)
                    .where(Item.id.in_([item_id for _, item_id, _ in rows[:limit]])).tuples()) if rows else {}
    return ([{"item_id": item_id, "external_id": external.get(item_id, str(item_id)),
              "labels": sorted((name, label.value) for name, label in labels.items()),
              "settled": settled.get(item_id)}
             for _, item_id, labels in rows[:limit]], len(rows))


def follow_rates(by_item):
    """Per analyst and overall: with the suggestion shown, how often the label equals it (the accept rate);
    with it hidden, how often the analyst's own label equals it anyway. {name: {shown, shown_agree, hidden,
    hidden_agree}}, the overall figures under the key None."""
    rates = {}
    for labels in by_item.values():
        for name, label in labels.items():
            if label.suggested is None or label.suggestion_shown is None:
                continue
            for key in (name, None):
                figures = rates.setdefault(key, {"shown": 0, "shown_agree": 0, "hidden": 0, "hidden_agree": 0})
                kind = "shown" if label.suggestion_shown else "hidden"
                figures[kind] += 1
                figures[kind + "_agree"] += label.value == label.suggested
    return rates


def report(dataset):
    """Everything the admin agreement page shows for ``dataset``."""
    by_item = standing_by_annotator(dataset)
    rows, total = disagreements(by_item, adjudications(dataset))
    rates = follow_rates(by_item)
    return {
        "pairs": pairwise(dataset, by_item),
        "disagreements": rows,
        "disagreement_count": total,
        "overall": rates.pop(None, None),
        "follow": sorted(rates.items()),
        "double_labeled": sum(len(labels) > 1 for labels in by_item.values()),
        "labeled": len(by_item),
    }
