"""A crashed node comes back though the PIDs its programs left in their files were taken.

On a busy machine PIDs wrap within minutes (pid_max 32768 here), so by the time a lab (or
ptor's kill-primary action) restarts a crashed node, the killed postmaster's PID may belong
to another process of the lab user, a backend of the new primary. PostgreSQL (postmaster.pid
and the socket's lock file) and pg_autoctl (its PID file) then refuse to start for as long
as that process lives. The tests make that state at will: a live process of the lab user's,
named in the files. And pg_auto_failover's rebuild by copy, hurried (the CI failure of
test_replay_backlog: a copy waiting minutes for a spread checkpoint)."""

import os
import subprocess

from ptor_harness.lab.processes import alive


def squatter(lab) -> subprocess.Popen:
    """A long-lived process of the lab user's, as a backend of the other node would be."""
    kwargs: dict = {}
    if lab.user.switching:
        kwargs = {"user": lab.user.uid, "group": lab.user.gid, "extra_groups": []}
    return subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, **kwargs)


def name_in(path: str, pid: int) -> None:
    """Make the PID file `path` name `pid`, its other lines kept."""
    with open(path) as pidfile:
        lines = pidfile.read().splitlines(keepends=True)
    lines[0] = f"{pid}\n"
    with open(path, "w") as pidfile:
        pidfile.writelines(lines)


def lock_files(node) -> list:
    return [os.path.join(node.datadir, "postmaster.pid"),
            os.path.join(node.socket_dir, f".s.PGSQL.{node.port}.lock")]


def test_a_crashed_standby_starts_though_its_pids_were_taken(make_lab):
    lab = make_lab("sync")
    name = lab.named("standby")
    node = lab.nodes[name]
    lab.stop_node(name, crash=True)
    other = squatter(lab)
    try:
        for path in lock_files(node):
            assert os.path.exists(path), path  # left by the killed postmaster
            name_in(path, other.pid)
        lab.start_node(name)
        assert node.running() and node.query("SELECT pg_is_in_recovery()") == [(True,)]
        assert alive(other.pid) and other.poll() is None  # the lab left it alone
    finally:
        other.kill()
        other.wait()


def test_a_crashed_node_rejoins_though_its_pids_were_taken(auto_failover_lab):
    lab = auto_failover_lab
    lab.wait_settled(120)
    name = lab.primary_name()
    node, keeper = lab.nodes[name], lab.keeper(name)
    lab.crash_node(name)
    other = squatter(lab)
    try:
        for path in (*lock_files(node), keeper.pidfile):
            assert os.path.exists(path), path  # left by the killed programs
            name_in(path, other.pid)
        lab.recover_node(name)
        lab.wait_settled(90)  # before the fix: "demoted" until the squatter exits
        assert node.running() and keeper.running()
        assert alive(other.pid) and other.poll() is None  # the lab left it alone
    finally:
        other.kill()
        other.wait()


def test_a_copy_waiting_for_the_primarys_spread_checkpoint_is_hurried(auto_failover_lab):
    """pg_autoctl rebuilds a node whose pg_rewind failed with pg_basebackup and no fast
    checkpoint: after a drill dirtied the cache, the copy waits minutes for a spread
    checkpoint (0.9 of checkpoint_timeout). The lab's hurry ends that wait."""
    from ptor_harness.lab.autofailover import DBNAME
    from ptor_harness.lab.base import wait_until

    lab = auto_failover_lab
    lab.wait_settled(120)
    primary = lab.current_primary()
    primary.query("DROP TABLE IF EXISTS ptor_test_dirty", dbname=DBNAME)
    # about 50 MB of dirty buffers: a spread checkpoint paces itself over minutes
    primary.query("CREATE TABLE ptor_test_dirty AS SELECT g, repeat('x', 900) AS pad "
                  "FROM generate_series(1, 50000) g", dbname=DBNAME)
    target = os.path.join(lab.dir, "data", "copy")
    kwargs: dict = {}
    if lab.user.switching:
        kwargs = {"user": lab.user.uid, "group": lab.user.gid, "extra_groups": []}
    copy = subprocess.Popen(
        [os.path.join(lab.bin, "pg_basebackup"), "-h", os.path.join(lab.dir, "sock"), "-p",
         str(primary.port), "-U", lab.user.name, "-D", target, "-X", "none",
         "--checkpoint=spread"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, **kwargs)
    try:
        wait_until("the copy to wait for the checkpoint", lambda: primary.query(
            "SELECT 1 FROM pg_stat_progress_basebackup "
            "WHERE phase = 'waiting for checkpoint to finish'"), 30, 0.1)
        lab.hurry_copies_of(primary.name)
        wait_until("the copy to finish", lambda: copy.poll() is not None, 60, 0.2)
        assert copy.returncode == 0, copy.stderr.read()
        assert os.path.exists(os.path.join(target, "PG_VERSION"))
    finally:
        if copy.poll() is None:
            copy.kill()
        copy.wait()
        primary.query("DROP TABLE IF EXISTS ptor_test_dirty", dbname=DBNAME)
