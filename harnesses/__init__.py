"""Agent harness adapters (one module per agent CLI) and the git/process layer they run in."""
