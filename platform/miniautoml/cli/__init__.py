"""Command-line interface: one module per command group, registered lazily in `main`."""
