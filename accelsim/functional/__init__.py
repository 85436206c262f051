"""Bit-exact int8 inference: the golden model (layers, network, kernels and their numpy spec)."""
