"""Reinjection to Postfix (10025): connection, transaction, pool, DSN."""
