"""`ptor-lab`: real local PostgreSQL HA clusters for demos and tests.

  ptor-lab up --dir D [--stack streaming|auto-failover|patroni|repmgr] [--port-base P]
                      [--mode sync|async] [--nodes 2|3] [--pooler pgbouncer]
                      [--pool-mode session|transaction] [--pooler-fencing repoint|none]
  ptor-lab status --dir D
  ptor-lab fault --dir D ACTION      kill-primary, stop-primary, switchover, kill-manager
  ptor-lab failover --dir D          streaming: crash the primary, promote the standby
  ptor-lab stop-node --dir D NODE    streaming, repmgr: crash one node (or --immediate);
                                     every stack: the repo server (NODE repo)
  ptor-lab start-node --dir D NODE   streaming, repmgr; every stack: repo
  ptor-lab down --dir D [--wipe]     stop what the lab started, by PID
  ptor-lab demo [--stack S]          up, a full drill with a kill, report, down
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Optional

from tabulate import tabulate

from ..errors import ConfigError
from ..outputs import report_file
from . import cdc as lab_cdc
from . import load_lab, pooler, stacks
from .actions import FAULT_ACTIONS
from .base import Lab
from .pg import LabError
from .streaming import StreamingLab
from .workdir import LabDirError

DEFAULT_DIR = os.path.join(tempfile.gettempdir(), "ptor-lab")
DEFAULT_PORTS = {"streaming": 6041, "auto-failover": 6010, "patroni": 6020, "repmgr": 6030}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ptor-lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--dir", default=DEFAULT_DIR, help="the lab's directory")
        return cmd

    up = add("up", "start a cluster (and a repo server) on 127.0.0.1")
    up.add_argument("--stack", choices=tuple(DEFAULT_PORTS), default="streaming")
    up.add_argument("--port-base", type=int, default=None,
                    help="first port (default: streaming 6041, auto-failover 6010, "
                         "patroni 6020, repmgr 6030)")
    up.add_argument("--mode", choices=("sync", "async"), default=None,
                    help="sync or async replication (streaming and patroni: sync by "
                         "default; repmgr: async, repmgr's default; auto-failover is sync)")
    up.add_argument("--nodes", type=int, choices=(2, 3), default=None,
                    help="data nodes (repmgr: 2 or 3; the other stacks have 2)")
    up.add_argument("--cdc", action="store_true",
                    help="wal_level = logical and a logical slot for ptor's CDC consumer "
                         "(--cdc-slot): on the streaming and repmgr labs a plain slot on "
                         "the primary only, on the patroni lab a permanent slot (a copy on "
                         "the replica)")
    up.add_argument("--cdc-plugin", choices=lab_cdc.PLUGINS, default="pgoutput")
    add_pooler_options(up)
    fault = add("fault", "inject a fault: " + ", ".join(FAULT_ACTIONS))
    fault.add_argument("action", help="one of: " + ", ".join(FAULT_ACTIONS) + " (blip=SECONDS, "
                       "cancel-sync-waits[=SECONDS])")
    add("status", "show each node's role, timeline and replication state")
    add("failover", "crash the primary (SIGKILL) and promote the standby")
    stop = add("stop-node", "crash one node (SIGKILL) or shut it down immediately")
    stop.add_argument("node")
    stop.add_argument("--immediate", action="store_true", help="SIGQUIT instead of SIGKILL")
    start = add("start-node", "start one node as it is")
    start.add_argument("node")
    down = add("down", "stop every server the lab started")
    down.add_argument("--wipe", action="store_true", help="also delete the lab directory")
    add("dsn", "print the primary and repo DSNs as shell exports")
    demo = sub.add_parser("demo", help="up, a drill with a failover and its report, down")
    demo.add_argument("--stack", choices=tuple(DEFAULT_PORTS), default="streaming")
    demo.add_argument("--port-base", type=int, default=None)
    demo.add_argument("--mode", choices=("sync", "async"), default=None,
                      help="the lab's replication (default: the stack's own)")
    demo.add_argument("--workers", type=int, default=4)
    add_pooler_options(demo)
    demo.add_argument("--keep", action="store_true", help="leave the lab running afterwards")
    demo.add_argument("--report-dir", default="ptor-runs")
    return parser


def add_pooler_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pooler", choices=("none", "pgbouncer"), default="none",
                        help="a connection pooler in front: clients connect through it")
    parser.add_argument("--pool-mode", choices=pooler.POOL_MODES, default="session")
    parser.add_argument("--pooler-fencing", choices=pooler.FENCING, default="repoint",
                        help="none: the pooler stays on the old primary after a failover "
                             "(the stuck-client case, on purpose)")


def bring_up(args: argparse.Namespace, lab_dir: str) -> Lab:
    """`up` and `demo`: the stack, then its pooler if asked; a pooler that cannot start
    takes the lab down with it."""
    shape = {key: value for key, value in (("mode", args.mode),
                                           ("nodes", getattr(args, "nodes", None)))
             if value is not None}
    if "nodes" in shape and args.stack != "repmgr":
        raise LabError(f"the {args.stack} lab has two data nodes; --nodes is for the repmgr "
                       "lab")
    lab = stacks()[args.stack].up(lab_dir, args.port_base or DEFAULT_PORTS[args.stack],
                                  **shape)
    if args.pooler == "pgbouncer":
        try:
            pooler.add(lab, args.pool_mode, args.pooler_fencing)
        except BaseException as exc:
            lab.abandon(exc)
    if getattr(args, "cdc", False):
        try:
            lab_cdc.add(lab, args.cdc_plugin)
        except BaseException as exc:
            lab.abandon(exc)
    return lab


def print_dsns(lab: Lab) -> None:
    print(f"export PRIMARY_PGDSN={shlex.quote(lab.primary_dsn())}")
    print(f"export REPO_PGDSN={shlex.quote(lab.repo_dsn())}")


def show_outputs(report_json: str) -> None:
    """Name the demo's run folder, its page and its picture, so a newcomer finds them."""
    try:
        run_dir = report_file.load(report_json)["run_dir"]
    except (ConfigError, KeyError):
        return
    print(f"ptor-lab: run folder {run_dir} (report.json, timeline.csv, ptor.log, ...)")
    page = os.path.join(run_dir, "report.html")
    if os.path.exists(page):
        print(f"ptor-lab: the drill in one page to open or attach: {page}")
    picture = os.path.join(run_dir, "timeline.png")
    if os.path.exists(picture):
        print(f"ptor-lab: picture {picture}")
    else:
        print("ptor-lab: no timeline.png: matplotlib is not installed (pip install "
              "'ptor[plot]')")


def demo(args: argparse.Namespace) -> int:
    """The quick start: a real failover drill on a fresh lab, end to end."""
    from .. import cli as ptor_cli

    # a folder of the demo's own, which the lab user can enter, around the lab's (which
    # the lab creates, so its wipe removes it); removed at the end if nothing else is in it
    around = tempfile.mkdtemp(prefix="ptor-demo-", dir=tempfile.gettempdir())
    os.chmod(around, 0o755)
    lab_dir = os.path.join(around, "lab")
    print(f"ptor-lab: starting the {args.stack} lab in {lab_dir}", flush=True)
    started = time.time()
    lab = bring_up(args, lab_dir)
    print(f"ptor-lab: lab up in {time.time() - started:.1f} s", flush=True)
    os.makedirs(args.report_dir, exist_ok=True)  # its report file goes in there
    report_json = os.path.join(args.report_dir, f"demo-{args.stack}.json")
    try:
        code = ptor_cli.main([
            "--primary-pgdsn", lab.primary_dsn(), "--init", "--lab-dir", lab_dir,
            "--parallel-workers", str(args.workers), "--warmup-duration", "3",
            "--duration", "60", "--observe-after", "3",
            "--failover-after", "3", "--failover-command",
            f"{shlex.quote(sys.executable)} -m ptor_harness.lab.cli fault --dir "
            f"{shlex.quote(lab_dir)} kill-primary", "--full-data-validation",
            "--check-primary-latency", "--report-dir", args.report_dir,
            "--report-json", report_json,
        ])
        show_outputs(report_json)
        return code
    finally:
        if args.keep:
            print(f"ptor-lab: lab left running in {lab_dir}")
            print_dsns(lab)
        else:
            left = lab.down(wipe=True)
            if not left:
                with contextlib.suppress(OSError):
                    os.rmdir(around)
            print("ptor-lab: lab stopped and " + removed(lab.dir, left))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `ptor-lab`; returns the exit code. A reader that went away
    (`ptor-lab status | head -1`) ends it quietly, never with a traceback."""
    args = _parser().parse_args(argv)
    try:
        code = run(args)
        sys.stdout.flush()  # here, not at exit, where a closed pipe cannot be handled
        return code
    except BrokenPipeError:
        from ..cli import discard_stdout

        discard_stdout()
        return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "demo":
            return demo(args)
        if args.command == "up":
            started = time.time()
            lab = bring_up(args, args.dir)
            print(f"# {args.stack} lab up in {time.time() - started:.1f} s in {lab.dir}")
            print_dsns(lab)
            if lab.state.get("cdc"):
                print(f"# CDC: {lab_cdc.advice(lab.state['cdc'])}")
            return 0
        lab = load_lab(args.dir)
        if args.command == "status":
            print(tabulate(lab.status(), headers="keys"))
        elif args.command == "dsn":
            print_dsns(lab)
        elif args.command == "fault":
            print(lab.fault(args.action))
        elif args.command in ("stop-node", "start-node") and args.node == "repo":
            stop_or_start_repo(lab, args)
        elif (args.command == "failover" and not isinstance(lab, StreamingLab)
              or args.command in ("stop-node", "start-node") and not hasattr(lab, "stop_node")):
            raise LabError(f"{args.command} is for the streaming lab; the {lab.stack} lab "
                           "has a failover manager: use ptor-lab fault")
        elif args.command == "failover":
            print(lab.failover())
        elif args.command == "stop-node":
            lab.stop_node(args.node, crash=not args.immediate)
            print(f"stopped {args.node}")
        elif args.command == "start-node":
            lab.start_node(args.node)
            print(f"started {args.node}")
        elif args.command == "down":
            left = lab.down(wipe=args.wipe)
            print("lab stopped" + (" and " + removed(lab.dir, left) if args.wipe else ""))
        return 0
    except LabError as exc:
        sys.stderr.write(f"ptor-lab: error: {exc}\n")
        return 2 if isinstance(exc, LabDirError) else 3


def stop_or_start_repo(lab, args: argparse.Namespace) -> None:
    """The repo server is no failover manager's, on any stack: stopping it tests a drill
    whose ledger goes away; starting it again lets `ptor reconcile` finish that run."""
    repo = lab.nodes["repo"]
    if args.command == "stop-node":
        repo.kill(signal.SIGQUIT if args.immediate else signal.SIGKILL)
        print("stopped repo")
    else:
        repo.start()
        print("started repo")
    lab.save()


def removed(lab_dir: str, left: list[str]) -> str:
    """What a wipe did, in words: everything gone, or what it left and why."""
    if not left:
        return "removed"
    shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    return (f"its files removed; left in {lab_dir}, not the lab's: {shown} (the folder stays "
            "with them)")


if __name__ == "__main__":
    sys.exit(main())
