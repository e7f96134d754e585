"""Outputs: what a drill leaves behind.

report.py builds the versioned report dict (report.json) from the drill's outcome;
and its terminal tables; exports.py writes the run folder's files, Prometheus and
JUnit; charts.py draws the timeline; history.py reads past runs back.
"""
