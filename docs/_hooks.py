"""mkdocs hook: the site's home page is the README (one copy to edit).

docs/index.md only points at ../README.md; when the site is built its text is replaced by the
README's, with the README's links into docs/ made relative to docs/ (`docs/x.md` -> `x.md`), so
`mkdocs build --strict` checks every README link as GitHub resolves it.
"""

from __future__ import annotations

import re
from pathlib import Path


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    readme = Path(config.config_file_path).parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    return re.sub(r"\]\(docs/", "](", text)
