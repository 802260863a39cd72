"""The labeling service: leases on queued items, decisions (label, reject, skip, undo, edit) and the labeled
items most similar to the one on screen. No Flask here; scores come from the worker through the store."""
