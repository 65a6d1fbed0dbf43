"""The repository stands on its own: nothing the tests, the docs or the build
read lives beside the checkout.  A clone anywhere, with no sibling
directories, must build, test and read complete."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Paths into a directory next to the checkout, or an absolute /…/shared/ one.
OUTSIDE = re.compile(rb"\.\./shared(?![\w-])|/shared/")
CHECKED = ("tests", "docs", "Makefile", "README.md", "CONTRIBUTING.md")


def checked_files():
    for name in CHECKED:
        p = REPO / name
        if p.is_file():
            yield p
        elif p.is_dir():
            yield from (f for f in sorted(p.rglob("*"))
                        # node_modules: the packages `make deps` installs (npm
                        # ci), not the repository's own files.
                        if f.is_file() and "__pycache__" not in f.parts
                        and "node_modules" not in f.parts)


def test_nothing_refers_to_a_sibling_directory():
    me = Path(__file__).resolve()
    hits = [f"{f.relative_to(REPO)}:{n}: {line.decode(errors='replace').strip()}"
            for f in checked_files() if f != me   # this file names the patterns
            for n, line in enumerate(f.read_bytes().splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)
    assert any(f.suffix == ".json" for f in checked_files())   # the walk saw the fixtures
