"""An admin's change of a dataset's settings and its audit entry, stored together."""
from labeler.data import audit
from labeler.store.db import write_transaction
from labeler.store.settings import update_settings


def change_settings(user, dataset, changes):
    """Store ``changes`` to ``dataset``'s settings (labeler.store.settings.update_settings) and, when any value
    changed, an audit entry by ``user`` with {name: [old, new]}, in one transaction. Returns what changed.
    Raises SettingsError naming the bad setting; neither settings nor audit entry are stored then."""
    with write_transaction():
        changed = update_settings(dataset, changes)
        if changed:
            audit.record(user, audit.SETTINGS_CHANGED, dataset, changes=changed)
    return changed
