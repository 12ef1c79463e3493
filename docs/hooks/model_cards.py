"""mkdocs hook: the shipped priors' model cards (``tomodiff/priors/weights/*.md``) as one docs page.

Generates ``priors/model-cards.md`` from every card (headings one level down) and copies the images
the cards show, so the docs always list the priors that ship, with the numbers their cards state.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

PAGE = "priors/model-cards.md"


def _weights_dir(config) -> Path:
    return Path(config["config_file_path"]).parent / "tomodiff" / "priors" / "weights"


def on_files(files, config):
    weights = _weights_dir(config)
    cards = sorted(weights.glob("*.md"))
    parts = ["# Model cards\n",
             "Every prior that ships with tomodiff has a card beside its weights "
             "(`tomodiff/priors/weights/NAME.md`), written by `tomodiff train-prior` and the checkout's "
             "`python -m benchmarks.model_card`. "
             "They are collected here as they stand in the package.\n"]
    for card in cards:
        text = card.read_text(encoding="utf-8")
        text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.MULTILINE)  # one level down: the page has the h1
        parts.append(text)
        for image in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text):
            src = weights / image
            if src.is_file():
                files.append(File.generated(config, f"priors/{image}", abs_src_path=str(src)))
    if not cards:
        parts.append("No prior ships with this checkout.\n")
    files.append(File.generated(config, PAGE, content="\n".join(parts)))
    return files
