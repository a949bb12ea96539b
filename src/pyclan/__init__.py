"""pyclan: Clan's declarative distributed services, in Python."""

__version__ = "0.1.0"
