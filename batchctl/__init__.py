"""batchctl: the command line that wires the parts together (the composition root)."""
