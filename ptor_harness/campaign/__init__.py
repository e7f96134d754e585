"""`ptor campaign`: many drills back to back over a matrix of scenarios, one distribution.

plan.py builds a scenario per cell of the `--vary` matrix and the interleaved order of the
rounds; settle.py is the health gate between rounds; stats.py the pure arithmetic
(percentiles, per-cell summaries, the campaign's checks); runner.py runs the rounds as
drills; outputs.py writes campaign.json, campaign.csv, JUnit, Prometheus and the picture.
"""
