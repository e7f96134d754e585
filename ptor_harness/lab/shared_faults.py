"""The faults every lab stack can inject the same way, given its nodes and, per data node,
its HA manager: a blip of the primary, the loss of the synchronous standby, cancelled
synchronous-replication waits. A mixin of `base.Lab`, which provides `nodes`,
`node_names`, `current_primary`, `set_role` and `save`."""

from __future__ import annotations

import contextlib
import signal
import time

import psutil

from .pg import LabError


class SharedFaults:
    """Faults written once for every stack (see the module's docstring)."""

    def manager(self, name: str):
        """The HA manager process of a data node (None on a stack without one)."""
        return None

    def node_processes(self, name: str) -> list:
        """A data node's postgres and its manager, each with every process it started."""
        roots = [self.nodes[name].pid if self.nodes[name].running() else None]
        manager = self.manager(name)
        if manager is not None and manager.running():
            roots.append(manager.pid)
        procs = []
        for pid in filter(None, roots):
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                procs += [root] + root.children(recursive=True)
        return list({proc.pid: proc for proc in procs}.values())

    def blip(self, seconds: float) -> str:
        """Freeze the primary node, its postgres and its manager (SIGSTOP), for `seconds`,
        then let it run on (SIGCONT): a stall shorter or longer than the stack's failover
        threshold. Sessions stay open and the kernel still answers TCP meanwhile."""
        name = self.current_primary().name
        procs = self.node_processes(name)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.suspend()
        try:
            time.sleep(seconds)
        finally:
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.resume()
        manager = self.manager(name)
        return (f"froze {name} ({len(procs)} processes: postgres"
                f"{' and ' + manager.name if manager else ''}) for {seconds:g} s, then "
                "resumed it")

    def sync_standby(self) -> str:
        """The node the primary waits for: the first synchronous (or quorum) standby it
        reports whose name is a node's, else its one standby."""
        primary = self.current_primary()
        rows = primary.query("SELECT application_name FROM pg_stat_replication WHERE "
                             "sync_state IN ('sync', 'quorum') ORDER BY sync_priority, "
                             "application_name")
        standbys = [n for n in self.node_names if n != primary.name]
        for (app,) in rows:
            if app in standbys:
                return app
        if rows and len(standbys) == 1:
            return standbys[0]
        raise LabError(f"{primary.name} has no synchronous standby")

    def stop_sync_standby(self) -> str:
        """Crash the synchronous standby (its manager too) while the load goes on; it stays
        down (`ptor-lab start-node`, or `down`). Commits then wait, or continue where a
        quorum has another standby."""
        name = self.sync_standby()
        manager = self.manager(name)
        if manager is not None:  # with every process it started: pg_autoctl's supervisor
            manager.kill(signal.SIGKILL)  # would otherwise start postgres again at once
        self.nodes[name].kill(signal.SIGKILL)
        self.save()
        return f"crashed the synchronous standby {name}" + (
            f" and its {manager.name}" if manager else "") + "; it stays down"

    def cancel_sync_waits(self, seconds: float) -> str:
        """For `seconds`, cancel every backend of the primary waiting for synchronous
        replication (what a driver's query timeout or a pooler's query_timeout does).
        PostgreSQL answers each with a local commit and a warning: acknowledged, maybe not
        replicated."""
        primary = self.current_primary()
        conn = primary.connect()
        cancelled = 0
        try:
            with conn.cursor() as cur:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    cur.execute("SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM "
                                "pg_stat_activity WHERE wait_event = 'SyncRep'")
                    cancelled += cur.fetchone()[0]
                    time.sleep(0.02)
        finally:
            conn.close()
        return (f"cancelled {cancelled} commit(s) of {primary.name} waiting for synchronous "
                f"replication over {seconds:g} s")
