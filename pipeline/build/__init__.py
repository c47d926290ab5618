"""The static folder -> a manifest and the bodies to publish.

Fingerprinting, CSS and source-map rewriting, webassets bundles and responsive image
variants. No network and no Flask: everything here works on local files.
"""
