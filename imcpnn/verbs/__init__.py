"""One module per ``imcpnn`` verb: SUMMARY, DESCRIPTION, add_arguments(parser), run(args)."""
