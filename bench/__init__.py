"""`make bench`: benchmarks run against real processes (not tests; speed is reported as ratios)."""
