"""Getting events out of the process: the background batch worker and the HTTP sink."""
