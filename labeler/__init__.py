"""labeler: a keyboard-driven web tool for labeling card transactions with active learning.

Layers, each importing only those below it (tests/test_layers.py checks): ``cli`` > ``web`` > ``labeling`` >
``data`` > ``worker`` (computes; its ``jobs`` module is the door the layers above use) > ``store`` > ``config``.
The machine learning is the top-level package ``models`` (numpy in and out), which imports nothing of labeler.
"""
