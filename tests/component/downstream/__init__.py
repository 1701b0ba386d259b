"""Component tests of mailfilter.downstream."""
