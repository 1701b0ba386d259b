"""Every SMTP reply mailfilter sends, as named constants.

See docs/engineering-rules.md, Rule 3.

Texts follow amavis 2.13 (docs/amavis-compat.md, "Fixed replies", "Final
replies") so that Postfix logs and the tools that read them see what they saw
before. Replies that carry data are templates with `str.format` fields.
"""

from __future__ import annotations

from typing import Final

PRODUCT: Final = "amavis"

GREETING: Final = "{helo} ESMTP " + PRODUCT + " service ready"
GREETING_LMTP: Final = "{helo} LMTP " + PRODUCT + " service ready"
QUIT: Final = "221 2.0.0 {helo} " + PRODUCT + " closing transmission channel"
NOOP: Final = "250 2.0.0 Ok NOOP"
RSET: Final = "250 2.0.0 Ok RSET"
VRFY: Final = "252 2.0.0 Argument not checked"
HELP: Final = (
    "214-2.0.0 See amavis home page at:\r\n"
    "214 2.0.0 http://www.ijs.si/software/amavisd/"
)
XFORWARD_OK: Final = "250 2.5.0 Ok XFORWARD"
XFORWARD_IN_TRANSACTION: Final = (
    "503 5.5.1 Error: XFORWARD not allowed within transaction"
)
XFORWARD_BAD_ATTR: Final = "501 5.5.4 XFORWARD command parameter error: {attr}"
XFORWARD_SYNTAX: Final = "501 5.5.4 Syntax error in XFORWARD parameters"
MAIL_OK: Final = "250 2.1.0 Sender {addr} OK"
RCPT_OK: Final = "250 2.1.5 Recipient {addr} OK"
TOO_MANY_RECIPIENTS: Final = "452 4.5.3 Too many recipients"
NESTED_MAIL: Final = "503 5.5.1 Error: nested MAIL command"
NEED_MAIL: Final = "503 5.5.1 Error: need MAIL command"
MAIL_SYNTAX: Final = "501 5.5.4 Syntax: MAIL FROM:<address>"
RCPT_SYNTAX: Final = "501 5.5.4 Syntax: RCPT TO:<address>"
BAD_ADDRESS: Final = "501 5.1.3 Bad address syntax"
BODY_SYNTAX: Final = "501 5.5.4 Syntax error in MAIL parameter: BODY"
RET_SYNTAX: Final = "501 5.5.4 Syntax error in MAIL parameter RET: {value}"
SMTPUTF8_SYNTAX: Final = "501 5.5.4 Syntax error in MAIL parameter: SMTPUTF8"
SIZE_SYNTAX: Final = "501 5.5.4 Syntax error in MAIL parameter: SIZE"
MAIL_PARAM_UNKNOWN: Final = "504 5.5.4 MAIL command parameter error: {param}"
NOTIFY_SYNTAX: Final = "501 5.5.4 Error in RCPT parameter NOTIFY, {value}"
RCPT_PARAM_UNKNOWN: Final = (
    "555 5.5.4 RCPT command parameter unrecognized: {param}"
)
DECLARED_TOO_BIG: Final = (
    "552 5.3.4 Declared message size ({size} B) exceeds size limit"
)
TOO_BIG: Final = "552 5.3.4 Message size ({size} B) exceeds size limit"
DATA_GO_AHEAD: Final = "354 End data with <CR><LF>.<CR><LF>"
NO_VALID_RECIPIENTS: Final = "554 5.1.1 Error (DATA): no valid recipients"
NO_VALID_RECIPIENTS_LMTP: Final = "503 5.1.1 Error (DATA): no valid recipients"
BAD_SYNTAX: Final = "500 5.5.2 Error: bad syntax"
UNKNOWN_COMMAND: Final = "500 5.5.2 Error: command {command} not recognized"
NOT_IMPLEMENTED: Final = "502 5.5.1 Error: command {command} not implemented"
LINE_TOO_LONG: Final = "500 5.5.2 Error: line too long"
NEED_HELO: Final = "503 5.5.1 Error: send {verb} first"
DATA_SYNTAX: Final = "501 5.5.4 Syntax: DATA"
HELO_SYNTAX: Final = "501 5.5.4 Syntax: {verb} hostname"
TOO_MANY_UNKNOWN: Final = (
    "421 4.7.0 Error: too many unrecognized commands, closing channel"
)
TOO_MANY_COMMANDS: Final = (
    "421 4.7.0 Error: too many {command} commands, closing channel"
)
# All processing slots are taken (max_connections messages in progress,
# counting those whose client has already gone): a 4xx to DATA defers only
# this message, where a refused connection would count against the whole
# content-filter transport in Postfix.
BUSY: Final = "451 4.3.2 Too many messages in progress, try again later"
SHUTTING_DOWN: Final = "421 4.3.2 Service shutting down, closing channel"
TIMEOUT: Final = "421 4.4.2 {helo} Error: timeout exceeded"

# Final replies after DATA (docs/amavis-compat.md, "Final replies").
# Passed mail: the downstream reply, verbatim, behind amavis's prefix.
RELAYED: Final = "{code} {enh} from MTA({proto}:[{host}]:{port}): {reply}"
DISCARDED: Final = "250 2.7.0 Ok, discarded, id={log_id} - {reason}"
REJECTED: Final = "554 5.7.0 Reject, id={log_id} - {reason}"
TEMPFAILED: Final = "450 4.7.0 Temporary failure, id={log_id} - {reason}"
# Mixed outcomes (some recipients passed, some not); docs/amavis-compat.md,
# "One reply for all recipients" rule 4.
MIXED_SUFFIX: Final = ", but {count} {what}"
# Infrastructure failures: never a verdict on the message, always 4xx so
# Postfix keeps the mail (docs/engineering-rules.md, Rule 1).
TEMPFAIL_INTERNAL: Final = (
    "451 4.5.0 Error in processing, id={log_id}, {section} FAILED: {error}"
)
TEMPFAIL_MTA: Final = (
    "451 4.3.0 id={log_id} - Temporary MTA failure on relaying, {detail}"
)
TEMPFAIL_CONNECT: Final = (
    "451 4.5.0 id={log_id} - Temporary MTA failure on relaying, From MTA() "
    "during fwd-connect ({detail}): id={log_id}"
)
TEMPFAIL_TIMEOUT: Final = "450 4.4.2 Timed out during {section}, id={log_id}"
REJECTED_DOWNSTREAM: Final = (
    "{code} {enh} id={log_id} - Rejected by next-hop MTA on relaying, {detail}"
)
# SMTP input: a recipient whose copy failed after another recipient's copy
# was delivered. A 4xx would make Postfix send the delivered copy again, so
# it is reported to the sender by a DSN instead (and logged).
NOT_DELIVERED_AFTER_PARTIAL: Final = (
    "554 5.4.0 id={log_id} - not delivered, other recipients were: {detail}"
)
# LMTP per-recipient replies.
LMTP_RCPT_TEMPFAIL: Final = (
    "451 4.5.0 <{rcpt}> Error in processing, id={log_id}"
)
