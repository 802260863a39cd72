"""Machine learning for labeler: numpy in, numpy out; never imports Flask or peewee."""
