"""Build steps that turn the static folder into what is published (variants, ...)."""
