"""Real parts only: the session's S3 server (moto and/or SeaweedFS), the real deploy, nginx
as a caching CDN, the demo site, and headless Debian Chromium driven by Playwright (no
browser download)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.artifacts import ARTIFACTS, SAVED
from tests.s3servers import S3Server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

def _load_stack() -> Any:
    spec = importlib.util.spec_from_file_location("demo_site_stack", ROOT / "site" / "stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class _LazyStack:
    """``site/stack.py``, loaded on first use, not when this folder is collected.

    It imports moto's server, boto3 and the CDN recipes (~0.25 s of CPU): every run that
    collects the suite, ``-m "not slow"`` included, and every ``-n`` worker, paid that
    for tests it then deselected."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # pytest's collection probes (fixture markers, __test__)
            raise AttributeError(name)
        module = sys.modules.get("demo_site_stack") or _load_stack()
        return getattr(module, name)


stack_module: Any = _LazyStack()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SAVED:
        terminalreporter.write_line(f"e2e screenshots saved in {ARTIFACTS}:")
        for path in SAVED:
            terminalreporter.write_line(f"  {path}")


@contextmanager
def stack_on(server: S3Server, workdir: Path, *, cdn_enabled: bool) -> Iterator[Any]:
    """The demo stack on the session's S3 server, its credentials in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in server.credentials.env().items():
            patch.setenv(name, value)
        with stack_module.running_stack(workdir, cdn_enabled=cdn_enabled,
                                        s3_endpoint=server.endpoint) as stack:
            yield stack


@pytest.fixture(scope="module")
def prod_stack(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with stack_on(s3_server, tmp_path_factory.mktemp("prod"), cdn_enabled=True) as stack:
        yield stack


@pytest.fixture(scope="module")
def dev_stack(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with stack_on(s3_server, tmp_path_factory.mktemp("dev"), cdn_enabled=False) as stack:
        yield stack


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian chromium is not installed at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(autouse=True)
def clean_env(clean_env: None, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite-wide clean environment plus the credentials of the stack's S3 server."""
    for name, value in s3_server.credentials.env().items():
        monkeypatch.setenv(name, value)


def visit(page: Any, url: str) -> tuple[list[str], list[str], list[str]]:
    """Load ``url``; return every request made, the failed ones, and the console errors."""
    requests: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("requestfailed", lambda request: failed.append(f"{request.url} {request.failure}"))
    page.on("response", lambda r: failed.append(f"{r.url} {r.status}") if r.status >= 400
            else None)
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url, wait_until="networkidle")
    return requests, failed, errors
