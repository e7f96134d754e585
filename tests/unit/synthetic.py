"""Synthetic ledgers for the pure modules' tests."""

from ptor_harness.ops import Identity, Op


def op(seq, kind, key, t_end, outcome="ok", worker=0, session=1, latency=0.001, rows=None,
       prev=None):
    """An op; `prev` is the version an acknowledged update or delete replaced."""
    t_start = None if t_end is None else t_end - latency
    return Op(worker, seq, kind, key, t_start, t_end, outcome, None, session, rows, prev)


def intent(seq, kind, key, worker=0):
    """An op whose intent is in the ledger but whose outcome never arrived."""
    return Op(worker, seq, kind, key, None, None, None, None, None, None, None)


def identity(worker, session, port, timeline=1, at=0.0):
    return Identity(worker, session, at, "127.0.0.1", port, False, "42", timeline)


def reconcile(ops, rows, servers=None, final=None, ops_per_transaction=1):
    """Reconcile one worker's synthetic ledger against synthetic primary rows; `servers`:
    session -> the server it ran on (default: every op on one)."""
    from ptor_harness.verify.reconcile import Reconciler

    servers = servers or {}
    r = Reconciler(lambda w, s: servers.get(s, "A"), final_server=final,
                   ops_per_transaction=ops_per_transaction)
    r.add_worker(0, sorted(ops, key=lambda o: (o.key, o.seq)), sorted(rows))
    return r.finish()
