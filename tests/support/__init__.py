"""Helpers shared by tests and benchmarks: daemons, test strings, ports."""
