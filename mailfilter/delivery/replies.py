"""The replies of the LMTP delivery server, as named constants.

Storage trouble and our own bugs answer 451 so Postfix retries; only a
permanent cause answers 5xx. A full mailbox is 452 4.2.2 when it can clear
(a filesystem quota, or the Maildir++ quota with --quota-tempfail) and
552 5.2.2 only for the Maildir++ quota configured as permanent. The
templates take the maildir library's enhanced code and reason.
"""

R250_RCPT = "250 2.1.5 OK"
R250_DELIVERED = "250 2.0.0 Delivered"
R451_INTERNAL = "451 4.3.0 Internal error, try again later"
R451_MOUNT = "451 4.3.0 Mail store not available, try again later"
R451_STORE = "451 {dsn} {reason}"
R452_MAILBOX_FULL = "452 4.2.2 Mailbox full, try again later"
R550_NO_USER = "550 5.1.1 No such user"
R550_BAD_ADDRESS = "550 5.1.3 Bad recipient address syntax"
R552_TOO_BIG = "552 5.3.4 Message too big"
R552_MAILBOX_FULL = "552 5.2.2 Mailbox full"
R550_STORE = "550 {dsn} {reason}"
