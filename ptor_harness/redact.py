"""Keep passwords out of everything ptor prints or stores.

Every string that may contain a DSN, an error message from libpq or a command line passes
through `redact` before it reaches a log, a report, the ledger or a process title.

Masking is token-aware: a password is masked where it stands as a password, and nowhere
else. Replacing every occurrence of the password's text (what ptor once did) mangled
everything that happened to contain it: with `password=ptor`, the schema `ptor` and the
report folder `ptor-runs` became `********`, run ids and numbers broke on a one-character
password, and JSON could break. The places a password stands:

- a keyword DSN's `password=` or `sslpassword=` value (quoted, or up to white space, with
  backslash escapes), which also covers `PGPASSWORD=value` in a command line;
- a URI's userinfo (`postgresql://user:PASSWORD@host`: up to the last `@` of the line,
  so a raw `@`, `/` or space in a broken URI's password is masked too);
- a URI's `password` or `sslpassword` query parameter.
"""

from __future__ import annotations

import re

MASK = "********"

_KEYWORD = re.compile(r"((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:[^\s\\]|\\.)+)",
                      re.IGNORECASE)
# The userinfo is taken to run to the last @ of the line: libpq takes spaces in it, and a
# password with a raw / ? or # (a broken URI, where libpq would read it as a host or port
# and quote it in its errors) must be masked all the same. Masking too much is safe.
_URI_AUTHORITY = re.compile(r"(postgres(?:ql)?://)([^\r\n]*)", re.IGNORECASE)
_URI_QUERY = re.compile(r"([?&](?:ssl)?password=)([^&#\s]*)", re.IGNORECASE)


def _mask_userinfo(match: re.Match) -> str:
    scheme, authority = match.group(1), match.group(2)
    at = authority.rfind("@")
    if at < 0:
        return match.group(0)
    userinfo, host = authority[:at], authority[at:]
    colon = userinfo.find(":")
    if colon < 0:
        return match.group(0)
    return scheme + userinfo[:colon + 1] + MASK + host


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return `text` with every password that stands as one (see the module) masked.

    `secrets` (the passwords the scenario's DSNs carry) are masked where they stand as a
    whole quoted value too (`'secret'` in a shell command), never inside other words."""
    if not text:
        return text
    out = _KEYWORD.sub(lambda m: m.group(1) + MASK, text)
    out = _URI_AUTHORITY.sub(_mask_userinfo, out)
    out = _URI_QUERY.sub(lambda m: m.group(1) + MASK, out)
    for secret in secrets:
        if secret:
            for quote in ("'", '"'):
                out = out.replace(quote + secret + quote, quote + MASK + quote)
    return out


def dsn_secrets(dsn: str | None) -> tuple[str, ...]:
    """The passwords a DSN carries, if any, so they can be masked wherever they show up."""
    if not dsn:
        return ()
    try:
        from psycopg2.extensions import parse_dsn

        parsed = parse_dsn(dsn)
    except Exception:  # an unparsable DSN is reported elsewhere; mask by pattern only
        return ()
    return tuple(parsed[key] for key in ("password", "sslpassword") if parsed.get(key))
