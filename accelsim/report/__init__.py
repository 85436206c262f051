"""Tables and figures from results; never runs a simulation."""
