"""`sslmae <command>`: the command-line shell. `main` (sslmae.cli.main) parses, runs one command
and turns every failure into one line and an exit code; each command is a module of
`sslmae.cli.commands` that reads its settings from params (sslmae.cli.params) and calls one
library function. This package's own import loads nothing, so a command's module imports only
what that command runs (the DVC stages' code dependencies are derived from it)."""
