"""Keep passwords out of everything ptor prints or stores.

Every string that may contain a DSN, an error message from libpq or a command line passes
through `redact` before it reaches a log, a report, the ledger or a process title.
"""

from __future__ import annotations

import re

_KEYWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URI_USERINFO = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)([^@\s]*)(@)", re.IGNORECASE)
_URI_QUERY = re.compile(r"([?&]password=)([^&\s]*)", re.IGNORECASE)

MASK = "********"


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return `text` with DSN passwords and any of the given secret strings masked."""
    if not text:
        return text
    out = _KEYWORD.sub(lambda m: m.group(1) + MASK, text)
    out = _URI_USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), out)
    out = _URI_QUERY.sub(lambda m: m.group(1) + MASK, out)
    for secret in secrets:
        if secret:
            out = out.replace(secret, MASK)
    return out


def dsn_secrets(dsn: str | None) -> tuple[str, ...]:
    """The password a DSN carries, if any, so it can be masked wherever it shows up."""
    if not dsn:
        return ()
    try:
        from psycopg2.extensions import parse_dsn

        password = parse_dsn(dsn).get("password")
    except Exception:  # an unparsable DSN is reported elsewhere; mask by pattern only
        return ()
    return (password,) if password else ()
