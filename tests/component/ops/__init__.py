"""Component tests of mailfilter.ops."""
