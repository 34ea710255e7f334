"""Run folders and what is done with them: training, clusters, sweeps, comparison, report."""
