"""The demo site's webassets bundles: the one definition both Flask-Assets and the deploy use.

Paths are relative to the static folder. ``cssrewrite`` keeps each source file's
relative ``url(...)`` right once the sources are joined into ``gen/``; the deploy
then rewrites those URLs again, to the fingerprinted names on the CDN.
"""

from __future__ import annotations

from webassets import Bundle

BUNDLES: dict[str, Bundle] = {
    "css_all": Bundle("css/base.css", "css/gallery.css", filters="cssrewrite",
                      output="gen/site.css"),
    "js_all": Bundle("js/util.js", "js/gallery.js", output="gen/app.js"),
}
