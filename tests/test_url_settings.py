"""Every URL setting is parsed one way: a URL ``urlsplit`` cannot read is a one-line exit 2.

``http://[::1`` (an unclosed bracket) made ``urlsplit`` raise ``ValueError`` and a port
beyond 65535 made ``.port`` raise it, as a traceback wherever the URL was first used.
:func:`pipeline.validate.parse_url` turns both into a :class:`ConfigError` naming the
setting, on the command line and in the Flask extension.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from pipeline import CDN
from pipeline.cli.main import main
from pipeline.errors import ConfigError
from pipeline.images.views import images_blueprint
from pipeline.urls import redact_url
from tests.installed import InstalledTool

#: Unparsable URLs, each with a password that must never be shown.
BAD_URLS = ["http://user:hunter2@[::1", "https://user:hunter2@cdn.example.com:99999",
            "http://user:hunter2@[::1]:port"]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize(("where", "named"), [
    (["--endpoint-url", "{url}", "--bucket", "assets"], "endpoint URL"),
    (["--cdn-url", "{url}"], "CDN URL"),
    ({"AWS_ENDPOINT_URL_S3": "{url}", "CDN_BUCKET": "assets"}, "endpoint URL"),
    ({"AWS_ENDPOINT_URL": "{url}", "CDN_BUCKET": "assets"}, "endpoint URL"),
    ({"CDN_URL": "{url}"}, "CDN URL"),
])
def test_the_command_line_refuses_an_unparsable_url_setting_in_one_line(
    where: Any, named: str, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "a.css").write_text("a {}\n")
    args = ["--dry-run"]
    if isinstance(where, list):
        args += [part.format(url=url) for part in where]
    else:
        for name, value in where.items():
            monkeypatch.setenv(name, value.format(url=url))

    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named} '") and "is not a valid URL" in err
    assert len(err.strip().splitlines()) == 1 and "hunter2" not in err


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    CDN(app)
    return app


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize(("config", "named"), [
    ({"CDN_URL": "{url}"}, "CDN_URL"),
    ({"CDN_MANIFEST": "{url}/static/manifest.json"}, "CDN_MANIFEST"),
    ({"CDN_MANIFEST": "s3://assets/static", "CDN_ENDPOINT_URL": "{url}"}, "CDN_ENDPOINT_URL"),
])
def test_the_flask_extension_refuses_an_unparsable_url_setting(
    config: dict[str, str], named: str, url: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_app(**{key: value.format(url=url) for key, value in config.items()})
    message = str(caught.value)
    assert message.startswith(f"{named} '") and "is not a valid URL" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("url", BAD_URLS)
def test_the_image_views_refuse_an_unparsable_private_endpoint_url(url: str) -> None:
    app = Flask(__name__)
    app.config.update(PRIVATE_BUCKET="private-images", PRIVATE_ENDPOINT_URL=url)
    with pytest.raises(ConfigError, match=r"^PRIVATE_ENDPOINT_URL '.*is not a valid URL"):
        app.register_blueprint(images_blueprint(current_user=lambda: None))


def test_an_unparsable_url_is_redacted_by_hand() -> None:
    assert redact_url("http://user:hunter2@[::1/x?token=1#f") == "http://[::1/x"


THEIR_APP = """
from flask import Flask
from pipeline import CDN
app = Flask(__name__)
app.config.from_prefixed_env("APP")
CDN(app)
"""


def test_the_installed_commands_answer_an_unclosed_bracket_in_one_line(
    installed: InstalledTool, project: Path,
) -> None:
    deploy = installed.run("cdn-deploy", "--endpoint-url", "http://[::1", "--bucket", "assets",
                           cwd=project)
    assert deploy.returncode == 2 and "Traceback" not in deploy.stderr
    assert deploy.stderr.strip() == ("error: endpoint URL 'http://[::1' is not a valid URL "
                                     "(Invalid IPv6 URL) (from --endpoint-url)")
    assert not (project / "build").exists()  # refused before anything was written

    (project / "their_app.py").write_text(THEIR_APP)
    flask = installed.run("python", "-m", "flask", "--app", "their_app.py", "cdn", "status",
                          cwd=project, APP_CDN_URL="http://[::1")
    assert flask.returncode == 2 and "Traceback" not in flask.stderr
    assert "Error: CDN_URL 'http://[::1' is not a valid URL (Invalid IPv6 URL)" in flask.stderr
