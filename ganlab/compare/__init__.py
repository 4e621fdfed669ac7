"""`ganlab compare`: seed-aggregated comparison of runs."""
