"""The live shell: the runner that trades a machine per symbol over a broker, in real (or simulated) time.
See docs/architecture.md for its parts."""
