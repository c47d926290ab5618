"""The Flask extension: ``CDN.init_app``, ``url_for`` for static files, the development
static view, ``flask cdn`` commands, bundle tags and the status view."""
