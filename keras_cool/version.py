"""The one source of keras_cool's version (read by setup.py without importing)."""

__version__ = "0.1.0"
