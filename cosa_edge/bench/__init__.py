"""Latency measurement and reports (numpy; matplotlib for the plots)."""
