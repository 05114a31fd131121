"""Four tasks a reader recognises, for `lab advise` (examples/README.md)."""
