"""The documentation: docs/ builds into a site with mkdocs in strict mode, and README.md stays a short front door."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO

README_MAX_LINES = 150
# [text](target) or [text](target "title"); images too.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def nav_pages(nav) -> list[str]:
    """Every page file the nav lists, however deeply nested."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def built_page(site: Path, page: str) -> Path:
    """Where mkdocs writes a page with directory URLs: ``a.md`` -> ``a/index.html``, ``index.md`` -> ``index.html``."""
    path = Path(page)
    if path.stem in ("index", "README"):
        return site / path.parent / "index.html"
    return site / path.with_suffix("") / "index.html"


def test_docs_build_strict_with_every_nav_page(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (site / "index.html").is_file()

    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    assert pages, "mkdocs.yml lists no pages"
    missing = [page for page in pages if not built_page(site, page).is_file()]
    assert not missing, f"pages in the nav that were not built: {missing}"


def test_readme_is_short_and_its_links_resolve():
    text = (REPO / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the rest belongs in docs/"

    broken = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = target.split("#", 1)[0]
        if path and not (REPO / path).exists():
            broken.append(target)
    assert not broken, f"README.md links to files that do not exist: {broken}"
