"""``emmaa-model-stats`` in Python: ``handler`` decides, ``app`` exports it."""
