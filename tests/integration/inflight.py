"""A failover command for tests that leaves every worker with ops in doubt, both ways:

1. not applied: every worker table is locked, so each worker's next statement blocks inside
   its transaction; then those sessions are terminated. The statement was sent and the
   session broke (in doubt), and the server rolled the transaction back.
2. applied: synchronous_standby_names names a standby that does not exist, so every commit
   is flushed locally and then waits for replication; then the primary is SIGKILLed and
   restarted in place. Crash recovery replays the local WAL: every one of those commits
   is there, although no client was told.

Run as `python -m tests.integration.inflight LAB_DIR WORKERS` from the repository root.
"""

import os
import signal
import sys
import time

from ptor_harness.lab import load_lab

WORKERS_SQL = ("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
               "'ptor-worker-%%' AND wait_event = %s")


def wait_for_waiters(node, wait_event: str, workers: int, timeout: float = 10.0) -> int:
    """Until every worker's session waits on `wait_event` (so each has an op in flight)."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = node.query(WORKERS_SQL, (wait_event,))[0][0]
        if waiting >= workers or time.monotonic() > deadline:
            return waiting
        time.sleep(0.05)


def main(lab_dir: str, workers: int) -> None:
    lab = load_lab(lab_dir)
    primary = lab.nodes[lab.named("primary")]
    # 1. statements blocked on a lock, then their sessions terminated: not applied
    conn = primary.connect()
    conn.autocommit = False
    with conn.cursor() as cur:
        for w in range(workers):
            cur.execute(f'LOCK TABLE ptor."worker_{w}" IN ACCESS EXCLUSIVE MODE')
        blocked = wait_for_waiters(primary, "relation", workers)
        primary.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      "application_name LIKE 'ptor-worker-%%' AND wait_event = 'relation'")
    conn.rollback()
    conn.close()
    print(f"terminated {blocked} sessions blocked on a lock")
    # 2. commits flushed locally, waiting for a standby that does not exist: applied
    primary.query("ALTER SYSTEM SET synchronous_standby_names = 'ptor_nowhere'")
    primary.query("SELECT pg_reload_conf()")
    waiting = wait_for_waiters(primary, "SyncRep", workers)
    primary.kill(signal.SIGKILL)
    primary.write_auto_conf({})  # drop synchronous_standby_names: the restart writes again
    primary.start()
    lab.save()
    print(f"killed the primary with {waiting} commits waiting for replication; restarted")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
    sys.stdout.flush()
    os._exit(0)
