"""`python -m bench.faults [--quick]`: fault campaigns R1-R7 on the real running system (issue 14)."""
