"""Component tests of mailfilter.smtp."""
