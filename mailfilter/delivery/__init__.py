"""Delivery into Maildirs: the LMTP delivery server."""
