"""The command line: `breakout-bot COMMAND`.

main.py      the entry point: the command registry, errors turned into one line each
args.py      the flags shared by commands (the strategy's generated from core/params.py)
commands/    one module per command: configure(parser) and run(args) -> exit code
"""
