"""YAML -> frozen, validated specs (architectures, workloads)."""
