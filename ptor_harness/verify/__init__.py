"""Verification: what the drill proves once the load is over.

validation.py reads the new primary; reconcile.py joins it with the ledger into findings
(lost, in doubt, anomalies); metrics.py derives RTO windows and latency from the ledger;
Pure functions where it can be, so
each is tested on synthetic ledgers.
"""
