"""Write the docs site's generated pages at build time (run by mkdocs-gen-files)."""

from __future__ import annotations

import sys
from pathlib import Path

import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docs_pages import generated_pages

for path, text in generated_pages().items():
    with mkdocs_gen_files.open(path, "w") as page:
        page.write(text)
