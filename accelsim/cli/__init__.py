"""Command-line interface: parse arguments, call the public API, print tables or JSON."""
