"""Instrumentation: the patch registry, the shared call and stream machinery, one module per SDK."""
