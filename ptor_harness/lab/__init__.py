"""Real local PostgreSQL HA clusters (labs) for demos and tests."""
