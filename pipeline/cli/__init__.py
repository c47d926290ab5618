"""The ``deploy.py`` command line: settings resolution (flag > env > pyproject > default),
the commands, reporting, and the one mapping of errors to exit codes (:func:`main`)."""
