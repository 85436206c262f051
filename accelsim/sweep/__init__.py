"""Threshold sweeps: thresholds, the sweep runner, result rows."""
