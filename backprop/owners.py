"""Who may change a run or a sweep: the browser that started it, or the operator (issue 21 item 11).

Every run records an owner: a browser's random token ("browser-" and 32 hexadecimal digits, made
on the server and never shown), "cli" for a run started from the command line (the operator's), a
sweep's owner for its trials. A run recorded before owners were kept has none: it is the
operator's. Anyone may read any run; only its owner, or the operator, may rename, delete, pin or
unpin it. A sweep has an owner by the same rules ("cli" for `backprop sweep`), and only its owner,
or the operator, may cancel, stop, pause, resume, rename or delete it. The operator is this
process itself (the CLI, the disk quota's clean-up: `actor=None` in the run store) or a browser
session that typed the token of `BACKPROP_ADMIN_TOKEN` (unset: no operator over the web). The
token is compared with `hmac.compare_digest` and never logged.
"""

import hmac
import os
import secrets

from .errors import InputError

ADMIN_TOKEN_VARIABLE = "BACKPROP_ADMIN_TOKEN"
OPERATOR = "operator"  # the actor of a session that typed the operator token
CLI = "cli"  # the owner of runs started from the command line: the operator's
BROWSER_PREFIX = "browser-"


def new_browser_token():
    """A fresh owner token for one browser session."""
    return BROWSER_PREFIX + secrets.token_hex(16)


def is_operator_token(typed):
    """Whether `typed` is the operator token of BACKPROP_ADMIN_TOKEN (never, when it is unset or empty)."""
    expected = os.environ.get(ADMIN_TOKEN_VARIABLE, "")
    if not expected or not isinstance(typed, str) or not typed:
        return False
    return hmac.compare_digest(typed.encode("utf-8"), expected.encode("utf-8"))


def may_change(owner, actor):
    """Whether `actor` (None: this process itself; OPERATOR; a browser's token) may change a run owned by
    `owner` (None for a run recorded before owners: the operator's)."""
    if actor is None or actor == OPERATOR:
        return True
    return owner is not None and owner != CLI and owner == actor


def whose(owner, actor):
    """Who started a run, as the page says it to `actor`: "you", "another browser" or "the operator"."""
    if owner is not None and owner == actor:
        return "you"
    if owner is None or owner == CLI or not owner.startswith(BROWSER_PREFIX):
        return "the operator"
    return "another browser"


def require_change(item_id, owner, actor, what="run"):
    """Raise InputError(what, ...) unless `actor` may change the run (or, with what="sweep", the sweep)
    numbered `item_id`; the message names who may."""
    if may_change(owner, actor):
        return
    if whose(owner, actor) == "the operator":
        raise InputError(what, f"{what} #{item_id} belongs to the operator (started from the command line or "
                               f"before {what}s had owners); only the operator may change it")
    raise InputError(what, f"{what} #{item_id} belongs to another browser; only the browser that started "
                           "it, or the operator (with the token of BACKPROP_ADMIN_TOKEN), may change it")
