"""Component tests of mailfilter.scan."""
