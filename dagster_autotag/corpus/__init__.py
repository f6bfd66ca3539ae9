"""corpus/: taxonomy → labels per scheme, rule labels, video text joins, distributions and splits."""
