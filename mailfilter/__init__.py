"""mailfilter: an amavis-compatible after-queue content filter for Postfix."""

__version__ = "0.1.0"
