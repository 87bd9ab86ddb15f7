"""``emmaa-after-update`` in Python: ``handler`` decides, ``app`` exports it."""
