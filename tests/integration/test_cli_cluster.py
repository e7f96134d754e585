"""What a user sees when the cluster is unreachable or unprepared, --reset, and secrets."""

import glob
import os
import subprocess
import sys
import urllib.parse

import psycopg2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import free_port_base, ptor_env


def test_unreachable_cluster_exits_3_with_one_sentence(run_ptor):
    port = free_port_base(1)  # nothing listens there
    run = run_ptor("--primary-pgdsn", f"host=127.0.0.1 port={port} dbname=postgres "
                   "password=NotShown42", "--rto-conn-timeout", "0.5")
    assert run.code == 3, run
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("ptor: error: cannot connect to the primary")
    assert "Traceback" not in run.stderr and "NotShown42" not in run.stderr + run.stdout


def test_missing_tables_without_init_exit_3(make_lab, run_ptor):
    lab = make_lab("sync")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn())
    assert run.code == 3, run
    assert "run with --init" in run.stderr.strip().splitlines()[-1]


def test_missing_repo_tables_without_init_exit_3(make_lab, run_ptor):
    lab = make_lab("sync")
    assert run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--ops-per-worker", "5",
                    "--expect", "any",
                    "--parallel-workers", "1").code == 0
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--repo-pgdsn", lab.repo_dsn(),
                   "--parallel-workers", "1")
    assert run.code == 3, run
    assert "ledger tables are missing in the repo" in run.stderr


def test_a_repo_on_the_cluster_under_test_is_refused(make_lab, run_ptor):
    """A ledger kept on the primary (its own database or another) or on its standby would
    go down with the failover it is there to measure: one sentence, exit 3, before
    anything is touched (it read "another ptor drill is running against this repo": the
    drill's own lock). The lab's own repo, a server apart, is taken."""
    lab = make_lab("sync")
    primary = lab.nodes[lab.named("primary")]
    standby = lab.nodes[lab.named("standby")]
    for repo, says in ((primary.dsn(), f"the primary's own server (127.0.0.1:{primary.port})"),
                       (primary.dsn("template1"), "the primary's own server"),
                       (standby.dsn(), "a server of the cluster under test (system "
                                       "identifier ")):
        run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--repo-pgdsn", repo, "--init",
                       "--parallel-workers", "1", "--ops-per-worker", "5", "--expect", "any")
        assert run.code == 3, run
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith(f"ptor: error: the repo (--repo-pgdsn) is {says}"), last
        assert "Traceback" not in run.stderr
    with primary.connect() as conn, conn.cursor() as cur:  # nothing was touched
        cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'ptor'")
        assert cur.fetchone()[0] == 0
    assert run_ptor("--primary-pgdsn", lab.primary_dsn(), "--repo-pgdsn", lab.repo_dsn(),
                    "--init", "--parallel-workers", "1", "--ops-per-worker", "5",
                    "--expect", "any").code == 0


def test_a_fault_the_labs_stack_does_not_offer_is_refused_before_the_load(make_lab,
                                                                          run_ptor):
    """Found out at the fault's time, it cost a whole drill whose verdict could only be
    unknown; now one sentence naming what the stack offers, exit 3, nothing touched."""
    lab = make_lab("sync")
    run = run_ptor("--primary-pgdsn", lab.primary_dsn(), "--init", "--lab-dir", lab.dir,
                   "--fault", "kill-primary:1", "--fault", "kill-manager:2")
    assert run.code == 3, run
    assert run.stderr.strip().splitlines()[-1] == (
        f"ptor: error: --fault kill-manager: the streaming lab cannot kill-manager; it "
        f"offers {', '.join(lab.offers())} (lab-dir {lab.dir})")
    assert "kill-primary" in lab.offers() and "Traceback" not in run.stderr
    with lab.nodes[lab.named("primary")].connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'ptor'")
        assert cur.fetchone()[0] == 0


def test_reset_drops_only_ptors_objects(make_lab, run_ptor):
    lab = make_lab("sync")
    dsns = ["--primary-pgdsn", lab.primary_dsn(), "--repo-pgdsn", lab.repo_dsn()]
    assert run_ptor(*dsns, "--init", "--parallel-workers", "2", "--ops-per-worker", "20",
                    "--expect", "any").code == 0
    primary = lab.nodes["node1"]
    # user objects that look like ptor's but are not
    primary.query("CREATE TABLE ptor.worker_7 (id int)")
    primary.query("CREATE TABLE ptor.user_data (id int)")
    primary.query("CREATE TABLE public.worker_0 (id int)")
    run = run_ptor(*dsns, "--reset")
    assert run.code == 0, run
    tables = {r[0] for r in primary.query(
        "SELECT schemaname || '.' || tablename FROM pg_tables "
        "WHERE schemaname IN ('ptor', 'public')")}
    assert tables == {"ptor.worker_7", "ptor.user_data", "public.worker_0"}
    repo_tables = lab.nodes["repo"].query(
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'ptor'")
    assert repo_tables == [(0,)]  # the repo's ptor schema held only ptor's tables


def test_passwords_never_leave_ptor(make_lab, run_ptor):
    lab = make_lab("sync")
    secret = "Pr1mArySecret"
    run = run_ptor("--primary-pgdsn", lab.primary_dsn() + f" password={secret}",
                   "--repo-pgdsn", f"postgresql://{lab.user.name}:{secret}R@127.0.0.1:"
                   f"{lab.nodes['repo'].port}/postgres",
                   "--init", "--parallel-workers", "2", "--ops-per-worker", "50",
                   "--check-primary-latency", "--expect", "any")
    assert run.code == 0, run
    (report_path,) = glob.glob(os.path.join(run.out_dir, "*", "report.json"))
    with open(report_path) as src:
        outputs = [run.stdout, run.stderr, src.read()]
    conn = psycopg2.connect(lab.repo_dsn())
    with conn.cursor() as cur:
        cur.execute("SELECT scenario || coalesce(report, '') FROM ptor.ledger_run")
        outputs += [row[0] for row in cur.fetchall()]
    conn.close()
    for text in outputs:
        assert secret not in text
    assert "********" in outputs[2]  # the scenario in the report shows the mask


SECRET_DSNS = st.builds(
    lambda password, form: (password, {
        "keyword": "host=127.0.0.1 port={port} dbname=x password='"
                   + password.replace("\\", "\\\\").replace("'", "\\'") + "'",
        "unquoted": f"host=127.0.0.1 port={{port}} dbname=x password={password} ",
        "ssl": "host=127.0.0.1 port={port} dbname=x sslpassword='"
               + password.replace("\\", "\\\\").replace("'", "\\'") + "'",
        "uri": f"postgresql://u:{urllib.parse.quote(password, safe='')}@127.0.0.1:{{port}}/x",
        "query": "postgresql://u@127.0.0.1:{port}/x?password="
                 + urllib.parse.quote(password, safe=""),
        "broken-uri": f"postgresql://u:{password}@127.0.0.1:{{port}}/x",
        "broken-keyword": f"host=127.0.0.1 port={{port}} password={password} tail",
    }[form]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
            min_size=4, max_size=16).map(lambda p: "Zq9" + p),
    st.sampled_from(["keyword", "unquoted", "ssl", "uri", "query", "broken-uri",
                     "broken-keyword"]))


@settings(max_examples=25, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=SECRET_DSNS)
def test_a_password_in_any_dsn_form_never_leaves_ptor(tmp_path_factory, case):
    """Valid or broken, in any form: the password is in no output of ptor's, whatever
    ptor makes of the DSN (exit 2 for one it cannot parse, 3 for an unreachable server)."""
    password, template = case
    out = tmp_path_factory.mktemp("runs")
    dsn = template.replace("{port}", str(free_port_base(1)))
    done = subprocess.run([sys.executable, "-m", "ptor_harness.cli", "--primary-pgdsn", dsn,
                           "--rto-conn-timeout", "0.2", "--report-dir", str(out)],
                          capture_output=True, text=True, env=ptor_env(),
                          stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert done.returncode in (2, 3), done.stderr
    assert "Traceback" not in done.stderr
    texts = [done.stdout, done.stderr] + [p.read_text(errors="replace")
                                          for p in out.rglob("*") if p.is_file()]
    encoded = urllib.parse.quote(password, safe="")
    for text in texts:
        assert password not in text and encoded not in text
