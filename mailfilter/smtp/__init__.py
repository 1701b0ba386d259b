"""The front door Postfix talks to: SMTP/LMTP server, DATA reader,
command parameters, xtext, reply texts, the envelope and byte-level wire
transforms."""
