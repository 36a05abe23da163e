"""Documents and OCR in many languages: pages, prompts, parsers, extraction and scores (09).

The prompts are those of the official Qwen3-VL cookbooks (``cookbooks/ocr.ipynb``,
``cookbooks/document_parsing.ipynb``); the scores are the ones OCR benchmarks report
(OmniDocBench: normalised edit distance and TEDS; CC-OCR: bag-of-tokens F1 and key-field F1).
The documents under ``assets/documents/`` and their ground truth come from
``scripts/make_documents.py``; ``reference`` writes that ground truth in the model's own output
formats, so every parser and scorer can be checked against a perfect answer.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

from cookbook.kit.assets import ASSETS

DOCUMENTS = ASSETS / "documents"
PIXELS_PER_TOKEN = 32 * 32          # one visual token covers 32x32 pixels
PAGE_TOKENS = (512, 2048)           # the OCR cookbook's min_pixels / max_pixels, in tokens
SCALE = 1000                        # Qwen3-VL's relative coordinates, 0-1000
SPOT_SCALE = 999                    # the OCR cookbook's spotting plot divides by 999, not 1000
PROMPTS = {
    # full-page reading (ocr cookbook; the second is also CC-OCR's multilingual prompt)
    "read": "Read all the text in the image.",
    "read_only": "Please output only the text content from the image without any additional descriptions or formatting.",
    # line-level text spotting (ocr cookbook)
    "spot": ("Spotting all the text in the image with line-level, and output in JSON format as "
             "[{'bbox_2d': [x1, y1, x2, y2], 'text_content': 'text'}, ...]."),
    # document parsing (document_parsing cookbook): layout with boxes
    "html": "qwenvl html",
    "markdown": "qwenvl markdown",
    # key information extraction (ocr cookbook); {keys} is a JSON object with empty values
    "fields": "Extract the key-value information in the format:{keys}",
}
CHAR_LANGUAGES = {"zh", "ja", "ko", "ar"}   # CC-OCR scores these by characters, others by words
NO_SPACE_LANGUAGES = {"zh", "ja"}           # written without spaces between words


class FieldsError(ValueError):
    """The model's key-value answer is not valid JSON for the schema; the message says why (09)."""


# ---------------------------------------------------------------- the documents
def index() -> list[dict]:
    """The generated documents: image, ground-truth file, kind and language of each (09)."""
    return json.loads((DOCUMENTS / "index.json").read_text(encoding="utf-8"))


def document(name: str) -> tuple[Any, dict]:
    """A generated page (PIL image) and its ground truth, by name (``receipt_zh``) (09)."""
    from PIL import Image

    path = DOCUMENTS / f"{name}.json"
    if not path.is_file():
        have = ", ".join(entry["image"].removesuffix(".png") for entry in index())
        raise FileNotFoundError(f"no document {name!r} in {DOCUMENTS}; available: {have}")
    truth = json.loads(path.read_text(encoding="utf-8"))
    with Image.open(DOCUMENTS / truth["image"]) as img:
        return img.convert("RGB"), truth


def full_text(truth: dict) -> str:
    """The page's text in reading order, one drawn line per line (09)."""
    return "\n".join(line["text"] for line in truth["lines"])


def _rel(box: list[float], width: int, height: int, scale: int = SCALE) -> list[int]:
    x1, y1, x2, y2 = box
    return [round(x1 / width * scale), round(y1 / height * scale), round(x2 / width * scale), round(y2 / height * scale)]


def table_html(rows: list[list[str]]) -> str:
    """Rows of cell texts as a plain HTML table (the form TEDS compares) (09)."""
    from html import escape

    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{body}</table>"


def _latex_table(rows: list[list[str]]) -> str:
    spec = "|" + "l|" * max(len(r) for r in rows)
    lines = [" & ".join(c.replace("&", r"\&").replace("%", r"\%") for c in row) + r" \\ \hline" for row in rows]
    return "\\begin{tabular}{" + spec + "}\n\\hline\n" + "\n".join(lines) + "\n\\end{tabular}"


def reference(truth: dict, fmt: str) -> str:
    """The ground truth written as the model answers ``fmt`` (``read``, ``spot``, ``html``,
    ``markdown``, ``fields``): a perfect answer that must score perfectly. ``html`` follows the real
    Qwen3-VL answer (official document-parsing cookbook): ``<div class="text|table" data-bbox>`` (09)."""
    from html import escape

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
        if fmt == "html":        # as Qwen3-VL writes it: every block a <div class=... data-bbox>
            attr = f'data-bbox="{x1} {y1} {x2} {y2}"'
            if block["type"] == "table":
                parts.append(f'<div class="table" {attr}>{table_html(block["rows"])}</div>')
            else:
                parts.append(f'<div class="text" {attr}>{escape(block["text"])}</div>')
        elif block["type"] == "table":
            parts.append(f"<!-- Table ({x1}, {y1}, {x2}, {y2}) -->\n{_latex_table(block['rows'])}")
        else:
            parts.append(("# " if block["type"] == "title" else "") + block["text"])
    if fmt == "html":
        return "```html\n<html><body>\n" + "\n".join(parts) + "\n</body></html>\n```"
    return "\n\n".join(parts)


# ---------------------------------------------------------------- pages and budgets
# saved in cookbook/documents.py
def page_image(src: Any, min_tokens: int = PAGE_TOKENS[0], max_tokens: int = PAGE_TOKENS[1]) -> Any:
    """A page resized so it costs between ``min_tokens`` and ``max_tokens`` visual tokens, both
    sides multiples of 32: the OCR cookbook's 512-2048 range by default (09)."""
    from PIL import Image

    from cookbook.memory import smart_resize
    from cookbook.kit.messages import load_image

    img = load_image(src).convert("RGB")
    h, w = smart_resize(img.height, img.width, min_pixels=min_tokens * PIXELS_PER_TOKEN,
                        max_pixels=max_tokens * PIXELS_PER_TOKEN)
    return img if (w, h) == img.size else img.resize((w, h), Image.Resampling.BICUBIC)


def pdf_pages(path: str | Path, dpi: int = 144) -> list[Any]:
    """Every page of a PDF rendered to a PIL image with pypdfium2, at ``dpi`` dots per inch (09).
    A file PDFium cannot read raises the cookbook's ``InputError`` naming it."""
    import pypdfium2 as pdfium

    from cookbook.kit.messages import InputError

    if not (isinstance(dpi, (int, float)) and 0 < dpi <= 1200):  # NaN fails too
        raise InputError(f"dpi={dpi!r}: expected a resolution between 1 and 1200 dots per inch")
    try:
        pdf = pdfium.PdfDocument(str(path))
    except FileNotFoundError as err:
        raise InputError(f"PDF {path}: no such file.") from err
    except pdfium.PdfiumError as err:  # PDFium's message does not say which file
        raise InputError(f"PDF {path}: not readable ({str(err).rstrip('.')}): a truncated download or not a PDF. "
                         "Fetch it again, or open it in a PDF viewer to check it.") from err
    try:
        return [page.render(scale=dpi / 72).to_pil().convert("RGB") for page in pdf]
    except pdfium.PdfiumError as err:
        raise InputError(f"PDF {path}: a page could not be rendered ({err}).") from err
    finally:
        pdf.close()


def read_pages(model: Any, processor: Any, pages: list[Any], prompt: str, max_new_tokens: int) -> list[Any]:
    """One ``cb.chat`` reply per page for the same prompt, with a progress bar (09)."""
    from tqdm.auto import tqdm

    from cookbook.runtime.engine import chat
    from cookbook.kit.messages import user

    return [chat(model, processor, [user(page, prompt)], max_new_tokens=max_new_tokens, seed=0)
            for page in tqdm(pages, desc="pages", unit="page")]


# ---------------------------------------------------------------- parsing the model's formats
# saved in cookbook/documents.py
class ParseError(ValueError):
    """A model's document answer that cannot be read (not text, or longer than any reply) (09)."""


def parse_html(text: str, width: int, height: int, scale: float | tuple[float, float] = SCALE) -> list[dict]:
    """Elements of a ``qwenvl html`` answer with ``data-bbox="x1 y1 x2 y2"``, each ``{"label": tag,
    "class", "text", "box"}`` in pixels of a ``width`` x ``height`` page, fenced or bare, cut off or not (09).
    Qwen3-VL writes ``<div class="text|image|table" data-bbox>`` on a 0-1000 grid, a table as a plain
    ``<table>`` inside ``<div class="table">``: a boxed element that is or holds a table keeps its
    ``html``. Qwen2.5-VL boxed ``<h1>``, ``<p>``... in pixels of its input: pass that (width, height)
    as ``scale``."""
    from bs4 import BeautifulSoup, CData, NavigableString, Tag

    from cookbook.kit.replies import bounded

    text = bounded(text, ParseError)
    sx, sy = (scale, scale) if isinstance(scale, (int, float)) else scale
    fence = re.search(r"```(?:html)?\s*(.*?)(?:```|$)", text, re.S)
    # Python's html.parser rescans a tag that no ">" closes at every later "<" (quadratic): such a
    # "<" (a cut-off tag, a "<" in prose) is text, so it is escaped first.
    body = re.sub(r"<(?=[^<>]*+(?:<|\Z))", "&lt;", fence.group(1) if fence else text)
    soup = BeautifulSoup(body, "html.parser")
    # One walk over the tree: each string goes to the innermost boxed element around it, and each
    # table to the innermost one holding it. A forgotten </div> then costs no more than the rest
    # of the text, instead of repeating it in every element's text (quadratic).
    found, owners, todo = [], [], list(reversed(soup.contents))
    while todo:
        node = todo.pop()
        if node is None:                             # the end of a boxed element
            owners.pop()
        elif isinstance(node, Tag):
            numbers = re.findall(r"-?\d+(?:\.\d+)?", node.get("data-bbox", ""))
            if len(numbers) == 4:                    # a malformed box: skip the element, keep the rest
                owners.append({"tag": node, "numbers": numbers, "words": [],
                               "table": node if node.name == "table" else None})
                found.append(owners[-1])
                todo.append(None)
            elif node.name == "table" and owners and owners[-1]["table"] is None:
                owners[-1]["table"] = node
            todo.extend(reversed(node.contents))
        elif owners and type(node) in (NavigableString, CData) and node.strip():
            owners[-1]["words"].append(node.strip())
    elements = []
    for own in found:
        x1, x2 = (min(max(float(v), 0.0), sx) for v in own["numbers"][0::2])
        y1, y2 = (min(max(float(v), 0.0), sy) for v in own["numbers"][1::2])
        box = [min(x1, x2) / sx * width, min(y1, y2) / sy * height,
               max(x1, x2) / sx * width, max(y1, y2) / sy * height]
        tag = own["tag"]
        element = {"label": tag.name, "class": " ".join(tag.get("class", [])),
                   "text": " ".join(own["words"]), "box": box}
        if own["table"] is not None:
            element["html"] = str(own["table"])
        elements.append(element)
    return elements


# saved in cookbook/documents.py
def parse_markdown(text: str, width: int, height: int) -> list[dict]:
    """Blocks of a ``qwenvl markdown`` answer: tables and images carry the box of the comment
    before them (``<!-- Table (x1, y1, x2, y2) -->``, 0-1000) in pixels; text blocks have none (09)."""
    marker = re.compile(r"<!--\s*(Table|Image)\s*\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)\s*-->")
    blocks, pending = [], None
    for chunk in re.split(r"\n\s*\n", text.strip()):
        chunk = chunk.strip()
        found = marker.match(chunk)
        if found:
            kind, *coords = found.groups()
            x1, y1, x2, y2 = (min(max(int(v), 0), SCALE) for v in coords)
            pending = {"label": kind.lower(), "box": [x1 / SCALE * width, y1 / SCALE * height,
                                                      x2 / SCALE * width, y2 / SCALE * height]}
            chunk = chunk[found.end():].strip()
            if kind == "Image":          # the picture itself is left out: the comment is the block
                blocks.append({**pending, "text": chunk})
                pending = None
                continue
            if not chunk:
                continue                 # the table follows after a blank line
        if pending is not None:
            blocks.append({**pending, "text": chunk})
            pending = None
        elif chunk:
            label = "title" if chunk.startswith("#") else "text"
            blocks.append({"label": label, "text": chunk.lstrip("#").strip() if label == "title" else chunk})
    return blocks


# saved in cookbook/documents.py
_TABLE_TOKENS = re.compile(r"<(/?)(table|tr|td|th)\b([^<>]*)>|<[^<>]*>|([^<]+)", re.IGNORECASE)


def _html_rows(text: str) -> list[list[str]]:
    """The rows of the first HTML table in ``text``, read in one pass over its tags. A new ``<tr>``
    or ``<td>`` closes the open one, as browsers do (an HTML parser nests unclosed cells instead, and
    reading them is cubic); ``colspan`` counts to at most 1000, the HTML limit."""
    from html import unescape

    rows, row, cell, depth = [], None, None, 0
    start = text.lower().find("<table")

    def close_cell() -> None:
        nonlocal cell
        if cell is not None:
            span, pieces = cell
            words = [w for w in (unescape(p).strip() for p in pieces) if w]
            row.extend([" ".join(words)] + [""] * (span - 1))
            cell = None

    for m in _TABLE_TOKENS.finditer(text, max(start, 0)):
        closing, name, attrs, words = m.groups()
        if words is not None or not name:          # text, or a tag other than the table's own
            if words is not None and cell is not None:
                cell[1].append(words)
            continue
        name = name.lower()
        if name == "table":                        # a table inside a cell: its cells are read in order
            depth += -1 if closing else 1
            if depth <= 0:
                break
            continue
        close_cell()
        if name == "tr":
            if row is not None:
                rows.append(row)
            row = None if closing else []
        elif not closing:
            span = re.search(r"colspan\s*=\s*[\"']?\s*(\d{1,7})", attrs, re.IGNORECASE)
            cell = (min(max(int(span.group(1)), 1), 1000) if span else 1, [])
            row = [] if row is None else row
    close_cell()
    if row is not None:
        rows.append(row)
    return rows


def table_rows(text: str) -> list[list[str]]:
    """The cells of the first table in ``text``, row by row: an HTML ``<table>``, a LaTeX
    ``tabular`` (how ``qwenvl markdown`` writes tables) or a Markdown pipe table (09)."""
    from cookbook.kit.replies import bounded

    text = bounded(text, ParseError)
    rows = _html_rows(text) if "<table" in text.lower() else []
    if rows:
        return rows
    latex = re.search(r"\\begin\{tabular\}\{[^}]*\}(.*?)\\end\{tabular\}", text, re.S)
    if latex:
        body = re.sub(r"\\(hline|toprule|midrule|bottomrule)", "", latex.group(1))
        body = re.sub(r"\\multicolumn\{\d+\}\{[^}]*\}\{([^}]*)\}", r"\1", body)
        rows = [[c.strip().replace(r"\&", "&").replace(r"\%", "%") for c in re.split(r"(?<!\\)&", line)]
                for line in re.split(r"\\\\", body)]
        return [r for r in rows if any(r)]
    pipes = [ln.strip().strip("|") for ln in text.splitlines() if ln.strip().startswith("|")]
    return [[c.strip() for c in ln.split("|")] for ln in pipes if not re.fullmatch(r"[\s|:-]+", ln)]


# saved in cookbook/documents.py
def to_dataframe(rows: list[list[str]]) -> Any:
    """A pandas DataFrame from table rows, the first row as the header; short rows padded (09)."""
    import pandas as pd

    if not rows:
        return pd.DataFrame()
    width = max(len(r) for r in rows)
    header, *body = [list(r) + [""] * (width - len(r)) for r in rows]
    return pd.DataFrame(body, columns=header)


# ---------------------------------------------------------------- key information as validated JSON
# saved in cookbook/documents.py
def parse_fields(text: str, schema: Any) -> Any:
    """The JSON object in a reply (bare or in a ```json fence) validated by a pydantic ``schema``;
    ``FieldsError`` says what is wrong (not JSON, a missing key, a wrong type). Nothing is filled in (09)."""
    from pydantic import ValidationError

    from cookbook.kit.replies import json_ready

    text = json_ready(text, FieldsError)  # json.loads raises RecursionError past ~1000 brackets
    fence = re.search(r"```(?:json)?\s*(.*?)(?:```|$)", text, re.S)
    body = (fence.group(1) if fence else text).strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as err:
        raise FieldsError(f"not valid JSON ({err.msg}, line {err.lineno} column {err.colno}) in {body[:80]!r}") from None
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'object'}: {e['msg']}" for e in err.errors())
        raise FieldsError(f"JSON does not fit {schema.__name__}: {problems}") from None


# saved in cookbook/documents.py
def extract_fields(model: Any, processor: Any, image: Any, schema: Any, max_new_tokens: int) -> Any:
    """Key fields of a document as a validated ``schema`` instance, asked with the OCR cookbook's
    prompt. An invalid answer gets ONE repair request (a second call that shows the error); if that
    fails too, ``FieldsError`` quotes both answers (09)."""
    from cookbook.runtime.engine import chat
    from cookbook.kit.messages import assistant, user

    keys = json.dumps({name: "" for name in schema.model_fields}, ensure_ascii=False)
    ask = user(image, PROMPTS["fields"].format(keys=keys))
    first = chat(model, processor, [ask], max_new_tokens=max_new_tokens, seed=0)
    try:
        return parse_fields(first.answer, schema)
    except FieldsError as err:
        problem = str(err)
    repair = user(f"Your answer is not valid: {problem}\nReply with only the JSON object {keys}, each "
                  "value copied from the image; write an empty string for a value you cannot read.")
    second = chat(model, processor, [ask, assistant(first.answer), repair], max_new_tokens=max_new_tokens, seed=0)
    try:
        return parse_fields(second.answer, schema)
    except FieldsError as err:
        raise FieldsError(f"no valid {schema.__name__} after one repair attempt.\n"
                          f"  first answer:  {first.answer[:100]!r}\n    -> {problem}\n"
                          f"  repair answer: {second.answer[:100]!r}\n    -> {err}") from None


# ---------------------------------------------------------------- scores
def _normalise(text: str, language: str) -> str:
    """Whitespace collapsed (removed for Chinese and Japanese), full-width forms folded (NFKC)."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(text.split()) if language in NO_SPACE_LANGUAGES else " ".join(text.split())


# saved in cookbook/documents.py
def edit_distance(pred: str, truth: str, language: str = "en") -> float:
    """OmniDocBench's normalised edit distance: Levenshtein(pred, truth) / the longer length,
    0 is perfect, 1 is nothing in common; whitespace normalised first (09)."""
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.normalized_distance(_normalise(pred, language), _normalise(truth, language))


# saved in cookbook/documents.py
def cer(pred: str, truth: str, language: str = "en") -> float:
    """Character error rate: edits needed per character of the truth (can exceed 1) (09)."""
    from rapidfuzz.distance import Levenshtein

    truth = _normalise(truth, language)
    return Levenshtein.distance(_normalise(pred, language), truth) / max(len(truth), 1)


# saved in cookbook/documents.py
def bag_f1(pred: str, truth: str, language: str = "en") -> float:
    """CC-OCR's text score: F1 of the bag (multiset) of tokens, lower-cased; tokens are characters
    for Chinese, Japanese, Korean and Arabic, words otherwise. Order does not count (09)."""
    from collections import Counter

    def tokens(text: str) -> Counter:
        text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
        return Counter(text.replace(" ", "") if language in CHAR_LANGUAGES else text.split(" "))

    p, t = tokens(pred), tokens(truth)
    right = sum((p & t).values())
    if right == 0:
        return 1.0 if not p and not t else 0.0
    precision, recall = right / sum(p.values()), right / sum(t.values())
    return 2 * precision * recall / (precision + recall)


# saved in cookbook/documents.py
def field_f1(pred: dict, truth: dict) -> float:
    """CC-OCR's key-information score: (key, value) pairs that match exactly after normalising
    (NFKC, spaces), F1 = TP / (TP + (FP + FN) / 2); empty values count as absent (09)."""
    def pairs(fields: dict) -> list[tuple[str, str]]:
        return [(k, _normalise(str(v), "en")) for k, v in fields.items() if str(v).strip()]

    p, t = pairs(pred), pairs(truth)
    tp = sum(1 for pair in p if pair in t)
    wrong = (len(p) - tp) + (len(t) - tp)
    return 1.0 if not p and not t else tp / (tp + wrong / 2)


# saved in cookbook/documents.py
def teds(pred_html: str, truth_html: str, structure_only: bool = False) -> float:
    """Tree-edit-distance similarity of two HTML tables (PubTabNet, OmniDocBench): 1 - APTED
    distance / the larger tree. Renaming a cell costs its text's normalised edit distance (09)."""
    from apted import APTED, Config
    from bs4 import BeautifulSoup
    from rapidfuzz.distance import Levenshtein

    class Node:
        def __init__(self, tag: str, span: tuple = (), text: str = "") -> None:
            self.tag, self.span, self.text, self.children = tag, span, text, []

    def tree(html: str) -> Node | None:
        table = BeautifulSoup(html, "html.parser").find("table")
        if table is None:
            return None
        root = Node("table")
        for tr in table.find_all("tr"):
            row = Node("tr")
            for cell in tr.find_all(["td", "th"]):      # th and td are both cells
                span = (cell.get("colspan", "1"), cell.get("rowspan", "1"))
                row.children.append(Node("td", span, "" if structure_only else cell.get_text(" ", strip=True)))
            root.children.append(row)
        return root

    class Cost(Config):
        def rename(self, a: Node, b: Node) -> float:
            if a.tag != b.tag or a.span != b.span:
                return 1.0
            return Levenshtein.normalized_distance(a.text, b.text) if a.tag == "td" else 0.0

        def children(self, node: Node) -> list:
            return node.children

    def size(node: Node) -> int:
        return 1 + sum(size(c) for c in node.children)

    p, t = tree(pred_html), tree(truth_html)
    if t is None:
        raise ValueError("the ground truth holds no <table>")
    if p is None:
        return 0.0
    return 1.0 - APTED(p, t, Cost()).compute_edit_distance() / max(size(p), size(t))


# saved in cookbook/documents.py
def spotting_f1(pred: list[dict], truth: dict, iou: float = 0.5) -> float:
    """End-to-end text spotting F1 (ICDAR style): a predicted line is right when its box matches a
    true line's (IoU >= ``iou``, one to one by ``cb.grounding.match``) and its text equals it (09)."""
    from cookbook.grounding import match

    language = truth["language"]
    boxed = [p for p in pred if "box" in p]
    lines = [{"label": "", "box": ln["box"]} for ln in truth["lines"]]
    pairs = match([{"label": "", "box": p["box"]} for p in boxed], lines, iou)
    hits = sum(1 for i, j, _ in pairs if _normalise(str(boxed[i].get("text_content", "")), language)
               == _normalise(truth["lines"][j]["text"], language))
    if hits == 0:
        return 1.0 if not boxed and not lines else 0.0
    precision, recall = hits / len(boxed), hits / len(lines)
    return 2 * precision * recall / (precision + recall)
