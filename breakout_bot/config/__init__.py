"""Configuration: CLI flags > environment > .env file > defaults, validated with one line per problem.

settings.py  Settings (the strategy's Params nested), the specs of every setting, load_settings
values.py    the value parsers
envfile.py   reading .env safely
"""
