"""Build: a machine's configuration → a generation (manifest, objects, activation script)."""
