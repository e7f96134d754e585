"""TLS: sslmode, sslrootcert and friends reach libpq unchanged, against a lab primary that
refuses every connection without TLS (certificates made here by openssl)."""

import os
import shutil
import subprocess

import pytest


def make_certificates(directory: str) -> dict:
    """A throwaway CA, a server certificate for 127.0.0.1 signed by it, and a second CA
    that signed nothing."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                f"/CN=ptor test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(directory, "san.ext"), "w") as ext:
        ext.write("subjectAltName = IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.crt")
    return {name: os.path.join(directory, name)
            for name in ("ca.crt", "other-ca.crt", "server.crt", "server.key")}


@pytest.fixture
def tls_lab(make_lab, tmp_path):
    lab = make_lab("sync")
    certs = make_certificates(str(tmp_path))
    primary = lab.nodes["node1"]
    for name in ("server.crt", "server.key"):
        target = os.path.join(primary.datadir, name)
        shutil.copy(certs[name], target)
        os.chmod(target, 0o600)
        lab.user.chown(target)
    with open(os.path.join(primary.datadir, "pg_hba.conf"), "w") as hba:
        hba.write("local all all trust\n"
                  "hostssl all all 127.0.0.1/32 trust\n"
                  "hostssl replication all 127.0.0.1/32 trust\n"
                  "hostnossl all all 127.0.0.1/32 reject\n")
    primary.query("ALTER SYSTEM SET ssl = on")
    primary.query("SELECT pg_reload_conf()")
    return lab, certs


def primary_only(lab) -> str:
    node = lab.nodes["node1"]
    return f"host=127.0.0.1 port={node.port} dbname=postgres user={lab.user.name}"


def test_a_drill_over_verified_tls(tls_lab, run_ptor):
    lab, certs = tls_lab
    dsn = f"{primary_only(lab)} sslmode=verify-full sslrootcert={certs['ca.crt']}"
    run = run_ptor("--primary-pgdsn", dsn, "--init", "--parallel-workers", "2",
                   "--warmup-duration", "0.5", "--duration", "2", "--full-data-validation",
                   "--expect", "any")
    assert run.code == 0, run  # every session (check, lock, workers, validation) used TLS
    assert run.report["verdict"] == "pass" and run.report["ops"]["ok"] > 0
    assert f"sslrootcert={certs['ca.crt']}" in run.report["scenario"]["primary_pgdsn"]


@pytest.mark.parametrize("tls, refusal", [
    ("sslmode=disable", "no encryption"),
    ("sslmode=verify-full sslrootcert={other}", "certificate verify failed"),
])
def test_without_tls_or_with_the_wrong_ca_ptor_refuses_in_one_sentence(tls_lab, run_ptor,
                                                                       tls, refusal):
    lab, certs = tls_lab
    dsn = f"{primary_only(lab)} {tls.format(other=certs['other-ca.crt'])}"
    run = run_ptor("--primary-pgdsn", dsn, "--init", "--duration", "1")
    assert run.code == 3, run
    assert refusal in run.stderr and run.stderr.count("\n") == 1
    assert "Traceback" not in run.stderr
