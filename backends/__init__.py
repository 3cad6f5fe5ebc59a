"""Batch-system adapters (installed as ``blahp.backends``), one module per system."""
