"""The scripts and styles of the Great Expectations Data Docs, served from the site itself.

Great Expectations' page templates load jQuery, Bootstrap, bootstrap-table,
Font Awesome and Vega from public CDNs. Offline (as on many campaign networks)
the index then lists no validations at all and every page is unstyled text. The
templates cannot be overridden (Great Expectations' own templates come first in
its loader) and no setting names another host, so after each build
:func:`localize` points the rendered pages at copies kept in the site's
``static/vendor/`` folder.

The copies are WebJars: the same files, versioned, on Maven Central (the one
registry besides PyPI that a locked-down machine can reach). ``make setup`` runs
``python -m votelake.webassets fetch``, which unpacks the few files the pages
load into the environment. Without them the pages keep their CDN links.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

log = logging.getLogger(__name__)

VENDOR_DIR = "static/vendor"
_WEBJARS_ROOT = "META-INF/resources/webjars"


@dataclass(frozen=True)
class Asset:
    """One script or stylesheet a Data Docs page loads, and its WebJar.

    Attributes:
        urls: the addresses Great Expectations' templates write for it.
        coordinate: the WebJar, ``group:artifact:version``.
        file: the file those addresses serve, inside the WebJar's folder.
        also: files or folders the file loads by relative path (fonts).
    """

    urls: tuple[str, ...]
    coordinate: str
    file: str
    also: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        """``<artifact>/<version>``: where the WebJar keeps its files, here and in the site."""
        _, artifact, version = self.coordinate.split(":")
        return f"{artifact}/{version}"

    @property
    def files(self) -> tuple[str, ...]:
        """Every path to copy, relative to :attr:`folder`."""
        return (self.file, *self.also)


# Versions as Great Expectations 1.x's templates pin them; "vega@5" is a range on
# the CDN, so the latest 5.x WebJar stands in for it.
ASSETS: tuple[Asset, ...] = (
    Asset(("https://cdn.jsdelivr.net/npm/vega@5",), "org.webjars:vega:5.32.0", "vega.min.js"),
    Asset(("https://cdn.jsdelivr.net/npm/vega-lite@5",), "org.webjars:vega-lite:5.23.0", "vega-lite.min.js"),
    Asset(("https://cdn.jsdelivr.net/npm/vega-embed@6",), "org.webjars:vega-embed:6.29.0", "vega-embed.min.js"),
    Asset(("https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css",),
          "org.webjars:font-awesome:6.6.0", "css/all.min.css", also=("webfonts",)),
    Asset(("https://code.jquery.com/jquery-3.7.1.min.js",), "org.webjars:jquery:3.7.1", "jquery.min.js"),
    Asset(("https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js",),
          "org.webjars:popper.js:1.12.9", "umd/popper.min.js"),
    Asset(("https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js",),
          "org.webjars:bootstrap:4.3.1", "js/bootstrap.min.js"),
    Asset(("https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",),
          "org.webjars:bootstrap:4.3.1", "css/bootstrap.min.css"),
    Asset(("https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js",),
          "org.webjars.npm:bootstrap-table:1.19.1", "dist/bootstrap-table.min.js"),
    Asset(("https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css",),
          "org.webjars.npm:bootstrap-table:1.19.1", "dist/bootstrap-table.min.css"),
    Asset(("https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
           "bootstrap-table-filter-control.min.js",),
          "org.webjars.npm:bootstrap-table:1.19.1",
          "dist/extensions/filter-control/bootstrap-table-filter-control.min.js"),
    # The templates ask for 1.19.0's filter-control styles (minified on the index,
    # plain on the pages); 1.19.1's are the same rules.
    Asset(("https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
           "bootstrap-table-filter-control.min.css",
           "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
           "bootstrap-table-filter-control.css"),
          "org.webjars.npm:bootstrap-table:1.19.1",
          "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"),
    Asset(("https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js",),
          "org.webjars:bootstrap-datepicker:1.9.0", "js/bootstrap-datepicker.min.js"),
    Asset(("https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css",),
          "org.webjars:bootstrap-datepicker:1.9.0", "css/bootstrap-datepicker.min.css"),
)
_BY_URL = {url: asset for asset in ASSETS for url in asset.urls}
_ADDRESS = re.compile(r'(?P<attr>src|href)="(?P<url>https://[^"]+)"')
# The logo comes from Great Expectations' S3 bucket; the site holds the same image.
_LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/[a-z_-]+\.png(\?[^\"')]*)?")
_LOCAL_LOGO = "static/images/logo-long.png"
# Subresource integrity and CORS mode are for third-party hosts; a page opened from
# disk has an opaque origin, and Chromium refuses a crossorigin script from file://.
_TAG = re.compile(r"<(?:script|link)\b[^>]*>")
_INTEGRITY = re.compile(r'\s+(?:integrity|crossorigin)="[^"]*"')
# The dark-mode theme (@forevolve/bootstrap-dark) has no WebJar; pages read in the
# light theme without it.
_DARK_THEME = re.compile(r'\s*<link[^>]*@forevolve/bootstrap-dark[^>]*>')


def web_dir() -> Path:
    """Where ``fetch`` puts the files: inside the Python environment, beside the Delta jars."""
    return Path(sys.prefix) / "share" / "votelake" / "web"


def missing(folder: Path | None = None) -> list[str]:
    """The asset files not in ``folder`` (default :func:`web_dir`); empty when all are there."""
    folder = folder or web_dir()
    return [f"{a.folder}/{f}" for a in ASSETS for f in a.files if not (folder / a.folder / f).exists()]


def fetch(folder: Path | None = None, mvn: str = "mvn") -> Path:
    """Download the WebJars with Maven and keep the files the pages load.

    Args:
        folder: destination (default :func:`web_dir`).
        mvn: the Maven executable.

    Returns:
        The folder. Does nothing when every file is there.

    Raises:
        RuntimeError: Maven is missing or failed.
    """
    folder = folder or web_dir()
    if not missing(folder):
        return folder
    if shutil.which(mvn) is None:
        raise RuntimeError(f"{mvn!r} not found: install Maven to fetch the Data Docs' scripts and styles")
    coordinates = sorted({a.coordinate for a in ASSETS})
    dependencies = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in (c.split(":") for c in coordinates)
    )
    pom = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>votelake</groupId><artifactId>data-docs-assets</artifactId><version>1</version>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        (work_dir / "pom.xml").write_text(pom)
        done = subprocess.run(
            [mvn, "-q", "-B", "-f", str(work_dir / "pom.xml"), "dependency:unpack-dependencies",
             f"-DoutputDirectory={work_dir / 'out'}", "-DexcludeTransitive=true",
             f"-Dmdep.unpack.includes={_WEBJARS_ROOT}/**"],
            capture_output=True, text=True,
        )
        if done.returncode:
            raise RuntimeError(f"Maven could not fetch {', '.join(coordinates)}:\n"
                               f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
        unpacked = work_dir / "out" / _WEBJARS_ROOT
        for asset in ASSETS:
            for name in asset.files:
                _copy(unpacked / asset.folder / name, folder / asset.folder / name)
    if missing(folder):
        raise RuntimeError(f"the WebJars lack {', '.join(missing(folder))}")
    return folder


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif source.is_file():
        shutil.copy2(source, target)


def localize(site: Path, pages: Iterable[Path] | None = None, source: Path | None = None) -> int:
    """Point Data Docs pages at the site's own copies of their scripts, styles and logo.

    Copies the fetched files into ``<site>/static/vendor/`` (once), so the site
    folder can be moved, zipped or served as it is.

    Args:
        site: the Data Docs folder (holding ``index.html``).
        pages: the pages to rewrite (default: every ``.html`` under ``site``).
            Pages already rewritten are left as they are.
        source: the fetched files (default :func:`web_dir`).

    Returns:
        How many pages were rewritten; 0 when the files were never fetched (the
        pages then keep their CDN links, and a warning says how to fetch them).
    """
    source = source or web_dir()
    if missing(source):
        log.warning("Data Docs load their scripts and styles from CDNs, which an offline reader cannot reach: "
                    "run `python -m votelake.webassets fetch` (make setup does) to serve them from the site")
        return 0
    vendor = site / VENDOR_DIR
    for asset in ASSETS:
        for name in asset.files:
            if not (vendor / asset.folder / name).exists():
                _copy(source / asset.folder / name, vendor / asset.folder / name)
    rewritten = 0
    for page in sorted(pages if pages is not None else site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        local = _local_page(text, site, page)
        if local != text:
            tmp = page.with_name(page.name + ".tmp")
            tmp.write_text(local, encoding="utf-8")
            os.replace(tmp, page)
            rewritten += 1
    return rewritten


def _local_page(text: str, site: Path, page: Path) -> str:
    def relative(path: str) -> str:
        return Path(os.path.relpath(site / path, page.parent)).as_posix()

    def address(match: re.Match[str]) -> str:
        asset = _BY_URL.get(match["url"])
        if asset is None:
            return match[0]
        return f'{match["attr"]}="{relative(f"{VENDOR_DIR}/{asset.folder}/{asset.file}")}"'

    text = _ADDRESS.sub(address, text)
    text = _LOGO.sub(lambda _: relative(_LOCAL_LOGO), text)
    text = _DARK_THEME.sub("", text)
    return _TAG.sub(lambda tag: _INTEGRITY.sub("", tag[0]), text)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m votelake.webassets fetch [--dir DIR]``: fetch the Data Docs' scripts and styles."""
    parser = argparse.ArgumentParser(prog="python -m votelake.webassets", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["fetch"])
    parser.add_argument("--dir", type=Path, default=None, help=f"destination (default {web_dir()})")
    args = parser.parse_args(argv)
    print(fetch(args.dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
