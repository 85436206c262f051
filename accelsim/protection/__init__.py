"""Protection of critical neurons: splitting + LCU, selective TMR and baselines."""
