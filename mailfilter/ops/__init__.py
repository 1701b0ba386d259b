"""Operator tools: selftest, probe, availability model, metrics, Postfix
recipe checks, built-in test messages and one-file scans."""
