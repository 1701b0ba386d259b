"""Component tests of mailfilter.delivery."""
