"""Sub-commands of the ``dgpo`` console script, one module each (``add_parser`` + ``run``)."""
