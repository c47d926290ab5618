"""Screenshots of e2e runs, kept in one module so the tests and the summary hook share the list.

(conftest.py is imported by pytest under its own name; a list kept there would be a
second copy when a test imports it.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
SAVED: list[Path] = []


def save_screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SAVED.append(path)
    return path
