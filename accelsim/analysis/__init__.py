"""Resilience analysis: per-neuron vulnerability factors (NVF) and the statistics around them."""
