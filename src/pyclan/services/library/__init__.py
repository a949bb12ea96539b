"""services/library."""
