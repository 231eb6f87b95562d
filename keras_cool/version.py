"""The one source of keras_cool's version (setup.py reads it as text)."""

__version__ = "0.1.0"
