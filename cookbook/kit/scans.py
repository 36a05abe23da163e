"""The document pages of 09 (``assets/documents/``, made by ``scripts/make_documents.py``) and their
ground truth, also written in the model's own output formats: a perfect answer for every parser and score."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from cookbook.kit.assets import ASSETS

DOCUMENTS = ASSETS / "documents"
SCALE = 1000      # Qwen3-VL's relative coordinates, 0-1000
SPOT_SCALE = 999  # the OCR cookbook's spotting plot divides by 999, not 1000


def index() -> list[dict]:
    """The generated documents: image, ground-truth file, kind and language of each."""
    return json.loads((DOCUMENTS / "index.json").read_text(encoding="utf-8"))


def document(name: str) -> tuple[Any, dict]:
    """A generated page (PIL image) and its ground truth, by name (``receipt_zh``)."""
    from PIL import Image

    path = DOCUMENTS / f"{name}.json"
    if not path.is_file():
        have = ", ".join(entry["image"].removesuffix(".png") for entry in index())
        raise FileNotFoundError(f"no document {name!r} in {DOCUMENTS}; available: {have}")
    truth = json.loads(path.read_text(encoding="utf-8"))
    with Image.open(DOCUMENTS / truth["image"]) as img:
        return img.convert("RGB"), truth


def full_text(truth: dict) -> str:
    """The page's text in reading order, one drawn line per line."""
    return "\n".join(line["text"] for line in truth["lines"])


def _rel(box: list[float], width: int, height: int, scale: int = SCALE) -> list[int]:
    x1, y1, x2, y2 = box
    return [round(x1 / width * scale), round(y1 / height * scale), round(x2 / width * scale), round(y2 / height * scale)]


def table_html(rows: list[list[str]]) -> str:
    """Rows of cell texts as a plain HTML table (the form TEDS compares)."""
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{body}</table>"


def _latex_table(rows: list[list[str]]) -> str:
    spec = "|" + "l|" * max(len(r) for r in rows)
    lines = [" & ".join(c.replace("&", r"\&").replace("%", r"\%") for c in row) + r" \\ \hline" for row in rows]
    return "\\begin{tabular}{" + spec + "}\n\\hline\n" + "\n".join(lines) + "\n\\end{tabular}"


def reference(truth: dict, fmt: str) -> str:
    """The ground truth written as the model answers ``fmt`` (``read``, ``spot``, ``html``, ``markdown``,
    ``fields``): a perfect answer. ``html`` is Qwen3-VL's ``<div class="text|table" data-bbox>``."""
    width, height = truth["size"]
    if fmt in ("read", "read_only"):
        return full_text(truth)
    if fmt == "spot":
        rows = [{"bbox_2d": _rel(ln["box"], width, height, SPOT_SCALE), "text_content": ln["text"]} for ln in truth["lines"]]
        return "```json\n" + json.dumps(rows, ensure_ascii=False, indent=2) + "\n```"
    if fmt == "fields":
        return "```json\n" + json.dumps(truth["fields"], ensure_ascii=False, indent=2) + "\n```"
    if fmt not in ("html", "markdown"):
        raise ValueError(f"unknown format {fmt!r}: use read, spot, html, markdown or fields")
    parts = []
    for block in truth["blocks"]:
        x1, y1, x2, y2 = _rel(block["box"], width, height)
        table = block["type"] == "table"
        if fmt == "html":
            inner = table_html(block["rows"]) if table else escape(block["text"])
            parts.append(f'<div class="{"table" if table else "text"}" data-bbox="{x1} {y1} {x2} {y2}">{inner}</div>')
        elif table:
            parts.append(f"<!-- Table ({x1}, {y1}, {x2}, {y2}) -->\n{_latex_table(block['rows'])}")
        else:
            parts.append(("# " if block["type"] == "title" else "") + block["text"])
    if fmt == "html":
        return "```html\n<html><body>\n" + "\n".join(parts) + "\n</body></html>\n```"
    return "\n\n".join(parts)


#: 09's long document: generated pages bound in this order (six pages, five languages).
BINDER = ["article_en", "receipt_de", "table_ja", "invoice_en", "article_fr", "receipt_zh"]


def binder(names: list[str] | None = None) -> tuple[list[Any], dict]:
    """The pages of 09's long document (PIL images, ``BINDER`` by default) and its truth: ``pages`` (names) and
    ``questions`` ``{"question", "answers", "page"}`` (page 1-based), each answer a field printed on that page only."""
    names = list(BINDER if names is None else names)
    loaded = [document(name) for name in names]
    questions = []
    for number, (_, truth) in enumerate(loaded, 1):
        fields = truth.get("fields", {})
        if "invoice_number" in fields:
            questions.append({"question": f"What is the number of the invoice from {fields['seller']}?",
                              "answers": [fields["invoice_number"]], "page": number})
        elif "company" in fields:
            questions.append({"question": f"What is the total amount on the receipt from {fields['company']}?",
                              "answers": [fields["total"]], "page": number})
    return [image for image, _ in loaded], {"pages": names, "questions": questions}
