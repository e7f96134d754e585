"""Lab settings a campaign can vary between its cells (`--vary pooler=none,pgbouncer`,
`--vary synchronous-commit=on,off`): not options of a drill, but of the cluster a ptor lab
runs, so the lab sets them before the cell's rounds, and puts them back as they were when
the campaign ends.

- pooler: pgbouncer in front of the lab (session pooling, repointed as the stack's users
  do it; see pooler.py), or none. The round's primary DSN is then the lab's: pgbouncer's,
  or the stack's own.
- synchronous-commit: `ALTER SYSTEM SET synchronous_commit` on every data node, reloaded,
  so it holds on whichever node is primary after a failover.
"""

from __future__ import annotations

from typing import Optional

LAB_SETTINGS = {"pooler": ("none", "pgbouncer"),
                "synchronous-commit": ("on", "off", "local", "remote_write", "remote_apply")}


def current(lab_dir: str) -> dict[str, str]:
    """The lab's settings now, as a campaign would vary them (to put them back after)."""
    from . import load_lab

    lab = load_lab(lab_dir)
    primary = lab.current_primary()
    (commit,) = primary.query("SHOW synchronous_commit")[0]
    return {"pooler": "pgbouncer" if lab.state.get("pooler") else "none",
            "synchronous-commit": commit}


def apply(lab_dir: str, wanted: dict[str, str]) -> Optional[str]:
    """Bring the lab to `wanted` (only the keys given); returns the primary DSN clients
    must use when the pooler setting was among them, else None. LabError when a node that
    must take a setting is down or the stack cannot have a pooler. (Imported by the
    scenario's validation for LAB_SETTINGS alone: the lab's modules load here.)"""
    from . import load_lab, pooler
    from .pg import LabError

    lab = load_lab(lab_dir)
    dsn = None
    if "pooler" in wanted:
        has = bool(lab.state.get("pooler"))
        if wanted["pooler"] == "pgbouncer" and not has:
            pooler.add(lab, "session", "repoint")
        elif wanted["pooler"] == "none" and has:
            pooler.remove(lab)
        dsn = lab.primary_dsn()
    if "synchronous-commit" in wanted:
        value = wanted["synchronous-commit"]
        down = [node.name for node in lab.data_nodes() if not node.running()]
        if down:
            raise LabError(f"cannot set synchronous_commit: {', '.join(down)} is down")
        for node in lab.data_nodes():
            node.query(f"ALTER SYSTEM SET synchronous_commit = '{value}'")
            node.query("SELECT pg_reload_conf()")
    return dsn
