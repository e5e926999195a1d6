"""One module per ``vpd`` subcommand; each defines ``register(subparsers)`` setting ``run`` as the handler."""
