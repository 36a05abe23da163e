"""09_documents_ocr: the generated documents match their ground truth; parsers and scorers behave."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pydantic import BaseModel

import cookbook as cb
from cookbook import documents as D
from cookbook import grounding
from cookbook.kit import scans as S

ROOT = Path(__file__).resolve().parent.parent
NAMES = [entry["image"].removesuffix(".png") for entry in S.index()]


def _generator():
    spec = importlib.util.spec_from_file_location("make_documents", ROOT / "scripts" / "make_documents.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the documents themselves
def test_pillow_shapes_right_to_left_text():
    from PIL import features

    assert features.check("raqm"), "Pillow lacks libraqm: install libfribidi0 (Debian) so Arabic is shaped"


def test_the_set_covers_the_kinds_and_languages():
    entries = S.index()
    assert {e["kind"] for e in entries} >= {"receipt", "invoice", "table", "article"}
    assert {e["language"] for e in entries} >= {"zh", "ja", "ko", "ar", "de", "fr", "en"}
    assert {e["language"] for e in entries if e["kind"] == "article"} == {"en", "fr", "zh", "ja", "ko", "ar"}
    total = sum(p.stat().st_size for p in S.DOCUMENTS.iterdir())
    assert total < 5_000_000


@pytest.mark.parametrize("name", NAMES)
def test_every_line_is_drawn_where_the_truth_says(name):
    """Each line drawn again from its recorded font, size and anchor lands on the recorded box and
    matches the committed pixels; no dark pixel lies outside the recorded lines."""
    gen = _generator()
    image, truth = S.document(name)
    page = np.asarray(image.convert("L"), dtype=np.int16)
    covered = np.zeros(page.shape, dtype=bool)
    for line in truth["lines"]:
        font = gen.load_font(line["font"], line["size"])
        mask = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask).text(tuple(line["xy"]), line["text"], fill=255, font=font,
                                  direction="rtl" if line["rtl"] else "ltr", language=line["language"],
                                  anchor="ra" if line["rtl"] else "la")
        assert list(mask.getbbox()) == line["box"], line["text"]
        x1, y1, x2, y2 = line["box"]
        ink = np.asarray(mask, dtype=np.int16)[y1:y2, x1:x2]
        crop = page[y1:y2, x1:x2]
        # at least as dark as this line's ink everywhere (borders may darken it more), black where solid
        assert (crop <= 255 - ink + 1).all() and (crop[ink == 255] == 0).all(), f"pixels differ for {line['text']!r}"
        covered[y1:y2, x1:x2] = True
    assert not ((page < 128) & ~covered).any(), "ink outside every recorded line"


@pytest.mark.parametrize("name", NAMES)
def test_blocks_and_fields_agree_with_the_lines(name):
    _, truth = S.document(name)
    texts = [ln["text"] for ln in truth["lines"]]
    for block in truth["blocks"]:
        inside = [ln for ln in truth["lines"] if all(
            block["box"][i] <= ln["box"][i] for i in (0, 1)) and all(ln["box"][i] <= block["box"][i] for i in (2, 3))]
        assert inside, block
        if block["type"] == "table":
            cells = [c for row in block["rows"] for c in row if c]
            assert all(c in texts for c in cells)
    for value in truth.get("fields", {}).values():
        assert any(value in t for t in texts), f"field value {value!r} is not on the page"


def test_the_generator_reproduces_the_committed_pages(tmp_path):
    _generator().make(tmp_path, pdf=False)
    for name in NAMES:
        assert json.loads((tmp_path / f"{name}.json").read_text()) == json.loads((S.DOCUMENTS / f"{name}.json").read_text())
        fresh = np.asarray(Image.open(tmp_path / f"{name}.png"))
        committed = np.asarray(Image.open(S.DOCUMENTS / f"{name}.png"))
        assert fresh.shape == committed.shape and (fresh == committed).all(), name


def test_pdf_pages_render_and_carry_the_text():
    import pypdfium2 as pdfium

    truth = json.loads((S.DOCUMENTS / "report.json").read_text(encoding="utf-8"))
    pages = D.pdf_pages(S.DOCUMENTS / "report.pdf", dpi=72)
    assert len(pages) == len(truth["pages"]) == 3
    assert all(abs(p.size[0] - 420) <= 1 and abs(p.size[1] - 595) <= 1 for p in pages)   # A5 at 72 dpi
    assert all(np.asarray(p.convert("L")).min() < 100 for p in pages)  # something is printed
    assert abs(D.pdf_pages(S.DOCUMENTS / "report.pdf", dpi=144)[0].size[0] - 840) <= 1
    pdf = pdfium.PdfDocument(str(S.DOCUMENTS / "report.pdf"))
    for page, expected in zip(pdf, truth["pages"], strict=True):
        text = page.get_textpage().get_text_range()
        assert " ".join(text.split()) == " ".join(" ".join(expected["lines"]).split())
    pdf.close()


def test_page_image_keeps_the_page_within_the_token_range():
    small = Image.new("RGB", (300, 200), "white")
    big = Image.new("RGB", (4000, 3000), "white")
    for img in (small, big):
        page = D.page_image(img)
        w, h = page.size
        assert w % 32 == 0 and h % 32 == 0
        assert 512 <= w * h // 1024 <= 2048
    assert D.page_image(big, max_tokens=256).size[0] * D.page_image(big, max_tokens=256).size[1] <= 256 * 1024
    img, _ = S.document("receipt_de")               # 206 tokens as drawn: scaled up to 512 or more
    page = D.page_image(img)
    assert 512 <= page.size[0] * page.size[1] // 1024 <= 600
    assert abs(page.size[0] / page.size[1] - img.size[0] / img.size[1]) < 0.05


# ---------------------------------------------------------------- parsers
HTML = """```html
<html><body>
<h1 data-bbox="100 50 900 120">Title</h1>
<p data-bbox="100 150 500 400">First <b>bold</b> paragraph</p>
<p data-bbox="bad box">skipped</p>
<table data-bbox="100 500 900 900"><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>
<div class="image" data-bbox="600 150 550 300"></div>
</body></html>
```"""


def test_parse_html_turns_boxes_into_pixels():
    els = D.parse_html(HTML, 2000, 1000)
    assert [e["label"] for e in els] == ["h1", "p", "table", "div"]
    assert els[0]["box"] == [200.0, 50.0, 1800.0, 120.0]
    assert els[1]["text"] == "First bold paragraph"
    assert D.table_rows(els[2]["html"]) == [["a", "b"], ["1", "2"]]
    assert els[3]["class"] == "image" and els[3]["box"] == [1100.0, 150.0, 1200.0, 300.0]  # corners put in order
    assert D.parse_html("no html at all", 10, 10) == []


MARKDOWN = """# Report

Some text here.

<!-- Image (0, 0, 500, 250) -->

<!-- Table (100, 300, 900, 600) -->
\\begin{tabular}{|l|l|}
\\hline
Name & Price \\\\ \\hline
Tea \\& cake & 3 \\\\ \\hline
\\end{tabular}

The end."""


def test_parse_markdown_keeps_table_and_image_boxes():
    blocks = D.parse_markdown(MARKDOWN, 1000, 2000)
    assert [b["label"] for b in blocks] == ["title", "text", "image", "table", "text"]
    assert blocks[0]["text"] == "Report"
    assert blocks[2]["box"] == [0.0, 0.0, 500.0, 500.0]
    assert blocks[3]["box"] == [100.0, 600.0, 900.0, 1200.0]
    assert D.table_rows(blocks[3]["text"]) == [["Name", "Price"], ["Tea & cake", "3"]]


def test_table_rows_reads_html_latex_and_pipes():
    assert D.table_rows('<table><tr><td colspan="2">x</td></tr><tr><td>1</td><td>2</td></tr></table>') == [["x", ""], ["1", "2"]]
    assert D.table_rows("| a | b |\n|---|:-:|\n| 1 | 2 |") == [["a", "b"], ["1", "2"]]
    assert D.table_rows(r"\begin{tabular}{cc}\multicolumn{2}{c}{T} \\ 1 & 2 \\ \end{tabular}") == [["T"], ["1", "2"]]
    frame = D.to_dataframe([["city", "sales"], ["Tokyo", "405"], ["Osaka"]])
    assert list(frame.columns) == ["city", "sales"] and frame.shape == (2, 2) and frame.iloc[1, 1] == ""


class Receipt(BaseModel):
    company: str
    total: str


def test_parse_fields_validates_and_explains():
    assert D.parse_fields('```json\n{"company": "A", "total": "1.00"}\n```', Receipt) == Receipt(company="A", total="1.00")
    with pytest.raises(D.FieldsError, match="not valid JSON"):
        D.parse_fields('{"company": "A", "total": }', Receipt)
    with pytest.raises(D.FieldsError, match=r"Receipt: total: Field required"):
        D.parse_fields('{"company": "A"}', Receipt)          # nothing is filled in
    with pytest.raises(D.FieldsError, match="total: Input should be a valid string"):
        D.parse_fields('{"company": "A", "total": [1]}', Receipt)


def test_parse_fields_keeps_no_cut_off_value():
    import json_repair

    cut_off = '{"company": "A", "total": "23.'
    assert json_repair.loads(cut_off)["total"] == "23."       # a syntax fixer keeps the cut value
    with pytest.raises(D.FieldsError, match="not valid JSON"):
        D.parse_fields(cut_off, Receipt)


def test_unknown_names_and_formats_are_refused():
    with pytest.raises(FileNotFoundError, match="available: receipt_zh"):
        S.document("receipt_xx")
    _, truth = S.document("receipt_zh")
    with pytest.raises(ValueError, match="unknown format"):
        S.reference(truth, "latex")


# ---------------------------------------------------------------- scorers, by hand
def test_text_scores_by_hand():
    assert D.edit_distance("sitting", "kitten") == pytest.approx(3 / 7)
    assert D.cer("sitting", "kitten") == pytest.approx(3 / 6)
    assert D.edit_distance("a  b\nc", "a b c") == 0.0                   # whitespace normalised
    assert D.edit_distance("你 好", "你好", "zh") == 0.0
    assert D.bag_f1("the cat sat", "the cat the mat") == pytest.approx(4 / 7)
    assert D.bag_f1("mat the cat the", "the cat the mat") == 1.0         # order does not count
    assert D.bag_f1("你好世界", "你好", "zh") == pytest.approx(2 / 3)      # characters for Chinese
    assert D.bag_f1("ab", "a b", "ko") == 1.0 and D.bag_f1("ab", "a b", "en") == 0.0
    assert D.bag_f1("", "") == 1.0 and D.bag_f1("", "x") == 0.0


def test_field_f1_by_hand():
    assert D.field_f1({"a": "1", "b": "2", "c": ""}, {"a": "1", "b": "3", "d": "4"}) == pytest.approx(1 / 2.5)
    assert D.field_f1({"total": "２３.５０"}, {"total": "23.50"}) == 1.0   # full-width digits folded
    assert D.field_f1({}, {"a": "1"}) == 0.0


def test_teds_by_hand():
    truth = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"   # 7 nodes
    assert D.teds(truth, truth) == 1.0
    assert D.teds(truth.replace(">b<", ">x<"), truth) == pytest.approx(1 - 1 / 7)
    assert D.teds("<table><tr><td>a</td><td>b</td></tr></table>", truth) == pytest.approx(1 - 3 / 7)
    assert D.teds(truth.replace(">b<", ">x<"), truth, structure_only=True) == 1.0
    assert D.teds(truth.replace("<td>a</td>", "<th>a</th>"), truth) == 1.0    # th counts as a cell
    assert D.teds("no table", truth) == 0.0


def test_spotting_f1_by_hand():
    image, truth = S.document("receipt_zh")
    lines = grounding.parse(S.reference(truth, "spot"), *image.size)
    assert D.spotting_f1(lines, truth) == 1.0
    wrong_text = [dict(ln, text_content="x") if i < 2 else ln for i, ln in enumerate(lines)]
    assert D.spotting_f1(wrong_text, truth) == pytest.approx(16 / 18)
    moved = [dict(ln, box=[b + 400 for b in ln["box"]]) if i == 0 else ln for i, ln in enumerate(lines)]
    assert D.spotting_f1(moved, truth) == pytest.approx(17 / 18)       # right text, wrong place
    half = lines[:9]
    assert D.spotting_f1(half, truth) == pytest.approx(2 * 1 * 0.5 / 1.5)   # precision 1, recall 1/2
    assert D.spotting_f1([], truth) == 0.0


# ---------------------------------------------------------------- the ground truth in the model's formats
@pytest.mark.parametrize("name", NAMES)
def test_reference_answers_score_perfectly(name):
    image, truth = S.document(name)
    w, h, lang = *image.size, truth["language"]
    text = S.reference(truth, "read")
    assert (D.edit_distance(text, S.full_text(truth), lang), D.bag_f1(text, S.full_text(truth), lang)) == (0.0, 1.0)
    spotted = grounding.parse(S.reference(truth, "spot"), w, h, scale=S.SPOT_SCALE)
    assert [s["text_content"] for s in spotted] == [ln["text"] for ln in truth["lines"]]
    assert D.spotting_f1(spotted, truth) == 1.0
    assert max(abs(a - b) for s, ln in zip(spotted, truth["lines"], strict=True) for a, b in zip(s["box"], ln["box"], strict=True)) <= 1
    elements = D.parse_html(S.reference(truth, "html"), w, h)
    assert len(elements) == len(truth["blocks"])
    for element, block in zip(elements, truth["blocks"], strict=True):
        assert max(abs(a - b) for a, b in zip(element["box"], block["box"], strict=True)) <= 1
        if block["type"] == "table":
            assert D.teds(element["html"], S.table_html(block["rows"])) == 1.0
        else:
            assert element["text"] == block["text"]
    tables = [b for b in D.parse_markdown(S.reference(truth, "markdown"), w, h) if b["label"] == "table"]
    for parsed, block in zip(tables, [b for b in truth["blocks"] if b["type"] == "table"], strict=True):
        assert D.table_rows(parsed["text"]) == block["rows"]
    if "fields" in truth:
        assert D.field_f1(json.loads(S.reference(truth, "fields").strip("`\n").removeprefix("json")), truth["fields"]) == 1.0


# ---------------------------------------------------------------- with the tiny model
@pytest.fixture(scope="module")
def tiny():
    return cb.load("tiny")


def test_extract_fields_asks_once_more_then_explains(tiny):
    model, processor = tiny
    calls = []
    generate = model.generate

    def counted(*args, **kwargs):
        calls.append(kwargs.get("input_ids", args[0] if args else None).shape[1])
        return generate(*args, **kwargs)

    model.generate = counted
    try:
        image, _ = S.document("receipt_de")
        with pytest.raises(D.FieldsError, match="after one repair attempt") as err:
            D.extract_fields(lambda m: cb.chat(model, processor, m, max_new_tokens=8, seed=0).answer,
                             D.page_image(image, 64, 256), Receipt)
    finally:
        model.generate = generate
    assert len(calls) == 2 and calls[1] > calls[0]     # the repair request carries the first answer
    assert "first answer" in str(err.value) and "repair answer" in str(err.value)


def test_read_pages_gives_one_reply_per_page(tiny):
    model, processor = tiny
    pages = [D.page_image(p, 64, 128) for p in D.pdf_pages(S.DOCUMENTS / "report.pdf", dpi=36)]
    replies = D.read_pages(lambda m: cb.chat(model, processor, m, max_new_tokens=4, seed=0), pages, D.PROMPTS["read"])
    assert len(replies) == 3 and all(0 < r.new_tokens <= 4 for r in replies)
