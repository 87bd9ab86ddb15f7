"""The Python guests' unit tests: ``python3 -m unittest discover -s guests/python``."""
