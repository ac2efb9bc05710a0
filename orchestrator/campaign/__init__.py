"""`mlorch campaign`: a lab's nodes benchmarked through Slurm — the campaign file, its ledger of
units, one job per system, the results on shared storage, and one merged tree and report."""
