"""vars."""
