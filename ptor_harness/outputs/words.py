"""How the report's plain-words sentences (the account) say a server, a time span and a
count: one way everywhere, so every number reads as the report's figure does."""

from __future__ import annotations

from typing import Optional


def server_name(server: Optional[dict]) -> str:
    """A server of the report's `servers` section as a reader knows it: by its node's
    name where the observer could tell which node it is, with where it is."""
    if not server:
        return "-"
    node, label = server.get("node"), server["label"]
    # a node the observer knows only by its address (--node-dsn, a multi-host DSN) is
    # named by it already: "127.0.0.1:6101 at 127.0.0.1:6101 (...)" says it twice
    return f"{node} at {label}" if node and not label.startswith(f"{node} ") else label


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def count(n: int, what: str) -> str:
    return f"{n:,} {what}" if n == 1 else f"{n:,} {what}s"
