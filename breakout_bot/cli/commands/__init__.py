"""One module per command (registered in cli/main.py): configure(parser) adds its flags, run(args) does
the work and returns the exit code."""
