"""ptor: prove how much data a PostgreSQL HA cluster loses in a failover, and for how long
writes are unavailable."""

__version__ = "0.1.0"
