"""SimPy cycle model of the accelerator: decides *when*, asks functional/ *what*."""
