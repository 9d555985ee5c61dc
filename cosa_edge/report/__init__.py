"""Reports: the paper's tables with our numbers beside its own, and ROC plots (no torch)."""
