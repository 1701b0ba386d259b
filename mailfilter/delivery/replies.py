"""The replies of the LMTP delivery server, as named constants.

Storage trouble and our own bugs answer 451 so Postfix retries; only a
permanent cause answers 5xx.
"""

R250_RCPT = "250 2.1.5 OK"
R250_DELIVERED = "250 2.0.0 Delivered"
R451_INTERNAL = "451 4.3.0 Internal error, try again later"
R451_MOUNT = "451 4.3.0 Mail store not available, try again later"
R550_NO_USER = "550 5.1.1 No such user"
R550_BAD_ADDRESS = "550 5.1.3 Bad recipient address syntax"
R552_TOO_BIG = "552 5.3.4 Message too big"
