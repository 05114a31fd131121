"""The command lines: `lab` (every command of the lab) and `producer` (just `send`, as compose runs it).

Each command parses its arguments and delegates; `errors.run` turns every expected error into
one line on stderr (secrets redacted) and exit code 2.
"""
