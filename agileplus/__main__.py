"""`python -m agileplus …` is the `agileplus` command."""

from agileplus.cli.main import main

main()
