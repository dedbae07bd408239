"""One module per `sslmae` command: HELP, `add_arguments(parser)` and `run(args)`, which reads the
command's settings from params and calls one library function."""
