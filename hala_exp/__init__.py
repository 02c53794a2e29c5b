"""hala_exp: translate-and-tune experiment framework."""
