"""The command line behind `python -m bot`: parsing, checks, one-off jobs and operations, each failure one sentence."""
