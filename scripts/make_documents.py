"""Generate the documents of 09_documents_ocr with their ground truth (assets/documents/).

    .venv/bin/python scripts/make_documents.py            # writes assets/documents/
    .venv/bin/python scripts/make_documents.py OUT_DIR    # anywhere else (the tests do this)

Every string is drawn with Pillow (libraqm shapes Arabic right to left) in a Noto font from the
Debian packages fonts-noto-core and fonts-noto-cjk (`make setup` installs them; a missing one is an
error naming its package), one line at a time: the line's ground-truth box
is the box of the ink it left, and the font, size and origin are recorded so a test can draw it
again and compare. Table borders are light grey, so every dark pixel belongs to a recorded line.
The PDF is printed by Chromium from HTML (a real text layer); its ground truth is the text of
each page. Nothing here is random: running it twice writes the same files.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, features

from cookbook.kit.system import SystemPieceMissing, font_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "documents"
CJK_INDEX = {"ja": 0, "ko": 1, "zh": 2}  # faces inside the NotoSansCJK .ttc collections
INK, BORDER, PAPER = 0, 170, 255  # text is black; borders are too light to count as ink
RTL = {"ar"}
NO_SPACES = {"zh", "ja"}  # scripts written without spaces between words


def font_spec(language: str, bold: bool = False) -> str:
    """The font file name (``name#index`` for a face in a collection) used for a language."""
    weight = "Bold" if bold else "Regular"
    if language in CJK_INDEX:
        return f"NotoSansCJK-{weight}.ttc#{CJK_INDEX[language]}"
    return f"NotoSansArabic-{weight}.ttf" if language == "ar" else f"NotoSans-{weight}.ttf"


def load_font(spec: str, size: int) -> ImageFont.FreeTypeFont:
    """Open a font recorded as ``name`` or ``name#index``, with libraqm layout (Arabic shaping).

    A font that is not installed raises ``SystemPieceMissing`` naming its package: a page drawn
    in a fallback font (or in tofu boxes) would not match its recorded ground truth."""
    name, _, index = spec.partition("#")
    if not features.check("raqm"):
        raise SystemPieceMissing("Pillow cannot shape Arabic without FriBiDi: apt-get install libfribidi0")
    return ImageFont.truetype(font_file(name), size, index=int(index or 0), layout_engine=ImageFont.Layout.RAQM)


def draw_line(page: Image.Image, text: str, xy: tuple[int, int], spec: str, size: int, language: str) -> list[int]:
    """Draw one line of text with its top-left (or, for RTL, top-right) at ``xy``; return its ink box."""
    font = load_font(spec, size)
    direction = "rtl" if language in RTL else "ltr"
    mask = Image.new("L", page.size, 0)
    ImageDraw.Draw(mask).text(xy, text, fill=255, font=font, direction=direction, language=language,
                              anchor="ra" if language in RTL else "la")
    box = mask.getbbox()
    if box is None:
        raise ValueError(f"nothing drawn for {text!r}")
    page.paste(INK, (0, 0), mask)
    return list(box)


def text_width(text: str, spec: str, size: int, language: str) -> int:
    """The advance width of a line of text (for wrapping and right alignment)."""
    font = load_font(spec, size)
    return int(font.getlength(text, direction="rtl" if language in RTL else "ltr", language=language))


def wrap(text: str, width: int, spec: str, size: int, language: str) -> list[str]:
    """Greedy line breaking: by character for Chinese and Japanese, by word otherwise."""
    units = list(text) if language in NO_SPACES else text.split(" ")
    sep = "" if language in NO_SPACES else " "
    lines, current = [], ""
    for unit in units:
        trial = current + sep + unit if current else unit
        if current and text_width(trial, spec, size, language) > width:
            lines.append(current)
            current = unit
        else:
            current = trial
    if current:
        lines.append(current)
    return lines


class Page:
    """A white page that records every line drawn on it and groups lines into blocks."""

    def __init__(self, name: str, kind: str, language: str, size: tuple[int, int]) -> None:
        self.name, self.kind, self.language = name, kind, language
        self.image = Image.new("L", size, PAPER)
        self.lines: list[dict] = []
        self.blocks: list[dict] = []
        self.fields: dict | None = None

    def line(self, text: str, xy: tuple[int, int], size: int, bold: bool = False, language: str | None = None) -> dict:
        lang = language or self.language
        spec = font_spec(lang, bold)
        box = draw_line(self.image, text, xy, spec, size, lang)
        rec = {"text": text, "box": box, "font": spec, "size": size, "xy": list(xy),
               "rtl": lang in RTL, "language": lang}
        self.lines.append(rec)
        return rec

    def block(self, kind: str, lines: list[dict], box: list[int] | None = None, **extra) -> None:
        """Group lines into a block; its box is theirs unless given (a table's is its grid)."""
        boxes = [ln["box"] for ln in lines]
        box = box or [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
        sep = "" if self.language in NO_SPACES else " "
        text = sep.join(ln["text"] for ln in lines) if kind != "table" else ""
        self.blocks.append({"type": kind, "box": box, "text": text, **extra})

    def paragraph(self, text: str, x: int, y: int, width: int, size: int, leading: float = 1.6,
                  kind: str = "paragraph", bold: bool = False) -> int:
        """Wrap and draw a paragraph in a column (right-aligned for RTL); return the next free y."""
        spec = font_spec(self.language, bold)
        recs = []
        for row in wrap(text, width, spec, size, self.language):
            xy = (x + width, y) if self.language in RTL else (x, y)
            recs.append(self.line(row, xy, size, bold))
            y += int(size * leading)
        self.block(kind, recs)
        return y

    def table(self, rows: list[list[str]], x: int, y: int, widths: list[int], size: int, row_height: int) -> int:
        """Draw a grid (light borders) with one line per cell; the first row is the header."""
        draw = ImageDraw.Draw(self.image)
        total, bottom = sum(widths), y + len(rows) * row_height
        cols = widths[::-1] if self.language in RTL else widths
        for r in range(len(rows) + 1):               # the grid first, so no border crosses a letter
            draw.line([x, y + r * row_height, x + total, y + r * row_height], fill=BORDER)
        left = x
        for w in [0, *cols]:
            left += w
            draw.line([left, y, left, bottom], fill=BORDER)
        recs = []
        for r, row in enumerate(rows):
            top, left = y + r * row_height, x
            cells = row[::-1] if self.language in RTL else row
            for w, cell in zip(cols, cells, strict=True):
                if cell:
                    ascent, descent = load_font(font_spec(self.language, r == 0), size).getmetrics()
                    pad = (row_height - ascent - descent) // 2   # the line's full height, centred
                    xy = (left + w - 10, top + pad) if self.language in RTL else (left + 10, top + pad)
                    recs.append(self.line(cell, xy, size, bold=r == 0))
                left += w
        # reading order: row by row, in the script's direction
        self.block("table", recs, box=[x, y, x + total + 1, bottom + 1], rows=rows)
        return bottom

    def save(self, out: Path) -> dict:
        ink = Image.eval(self.image, lambda v: 255 - v).getbbox()  # text and borders
        self.image = self.image.crop((0, 0, self.image.width, min(self.image.height, ink[3] + 40)))
        self.image.save(out / f"{self.name}.png", optimize=True)
        truth = {"image": f"{self.name}.png", "kind": self.kind, "language": self.language,
                 "size": list(self.image.size), "lines": self.lines, "blocks": self.blocks}
        if self.fields is not None:
            truth["fields"] = self.fields
        (out / f"{self.name}.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
        return truth


# ---------------------------------------------------------------- receipts (key information)
RECEIPTS = {
    "zh": dict(company="星光便利店", address="上海市黄浦区南京东路100号", date="2025-03-14 18:42",
               header=["品名", "数量", "金额"], items=[["矿泉水", "2", "3.00"], ["牛奶面包", "1", "8.50"], ["绿茶", "3", "12.00"]],
               total_label="合计", total="23.50", thanks="谢谢惠顾，欢迎再来"),
    "ko": dict(company="한빛마트", address="서울특별시 종로구 세종대로 175", date="2025-04-02 09:15",
               header=["품목", "수량", "금액"], items=[["생수", "2", "1,800"], ["김밥", "1", "3,500"], ["커피", "1", "4,000"]],
               total_label="합계", total="9,300", thanks="감사합니다"),
    "de": dict(company="Bäckerei Müller", address="Hauptstraße 12, 10115 Berlin", date="14.03.2025 07:58",
               header=["Artikel", "Menge", "Betrag"], items=[["Brötchen", "4", "1,60"], ["Kaffee", "1", "2,90"], ["Apfelstrudel", "1", "3,20"]],
               total_label="Summe EUR", total="7,70", thanks="Vielen Dank für Ihren Einkauf"),
    "ar": dict(company="مخبز النخيل", address="شارع الملك فهد، الرياض", date="2025-05-10",
               header=["الصنف", "الكمية", "المبلغ"], items=[["خبز", "2", "4.00"], ["حليب", "1", "6.50"], ["تمر", "1", "15.00"]],
               total_label="المجموع", total="25.50", thanks="شكرا لزيارتكم"),
}


def receipt(language: str) -> Page:
    d = RECEIPTS[language]
    page = Page(f"receipt_{language}", "receipt", language, (480, 560))
    rtl = language in RTL
    x0, width = 30, 420
    edge = x0 + width if rtl else x0
    y = page.paragraph(d["company"], x0, 30, width, 30, kind="title", bold=True) + 4
    y = page.paragraph(d["address"], x0, y, width, 18)
    y = page.paragraph(d["date"], x0, y, width, 18) + 12
    y = page.table([d["header"], *d["items"]], x0, y, [220, 80, 120], 18, 38) + 18
    label = page.line(d["total_label"], (edge, y), 22, bold=True)
    amount_x = x0 if rtl else x0 + width
    amount = draw_aligned(page, d["total"], amount_x, y, 22, right=not rtl)
    page.block("paragraph", [label, amount])
    page.paragraph(d["thanks"], x0, y + 60, width, 18)
    page.fields = {"company": d["company"], "date": d["date"], "address": d["address"], "total": d["total"]}
    return page


def draw_aligned(page: Page, text: str, x: int, y: int, size: int, right: bool) -> dict:
    """A line whose right edge (``right=True``) or left edge sits at ``x``."""
    spec = font_spec(page.language, True)
    w = text_width(text, spec, size, page.language)
    if page.language in RTL:  # RTL lines are anchored on their right edge
        return page.line(text, (x + w if not right else x, y), size, bold=True)
    return page.line(text, (x - w if right else x, y), size, bold=True)


# ---------------------------------------------------------------- an invoice (form + table)
def invoice() -> Page:
    page = Page("invoice_en", "invoice", "en", (820, 760))
    page.paragraph("INVOICE", 50, 40, 300, 40, kind="title", bold=True)
    y = 120
    left = [("Invoice No.", "INV-2025-0042"), ("Date", "2025-03-31"), ("Due", "2025-04-30")]
    for key, value in left:
        k = page.line(key + ":", (50, y), 18, bold=True)
        v = page.line(value, (200, y), 18)
        page.block("paragraph", [k, v])
        y += 32
    y += 16
    s = page.paragraph("Seller: Northwind Supplies Ltd., 8 Harbour Road, Leeds", 50, y, 720, 18)
    b = page.paragraph("Bill to: Contoso Books, 21 Market Street, York", 50, s, 720, 18)
    rows = [["Description", "Qty", "Unit price", "Amount"],
            ["A4 paper, 500 sheets", "20", "4.50", "90.00"],
            ["Ink cartridge, black", "10", "38.00", "380.00"],
            ["Desk lamp", "4", "62.50", "250.00"],
            ["Stapler", "12", "15.00", "180.00"]]
    y = page.table(rows, 50, b + 20, [340, 80, 150, 150], 18, 40) + 24
    for label, value in [("Subtotal", "900.00"), ("VAT 20%", "180.00"), ("Total GBP", "1,080.00")]:
        k = page.line(label, (470, y), 18, bold=label.startswith("Total"))
        v = draw_aligned(page, value, 770, y, 18, right=True)
        page.block("paragraph", [k, v])
        y += 32
    page.fields = {"invoice_number": "INV-2025-0042", "date": "2025-03-31", "seller": "Northwind Supplies Ltd.",
                   "buyer": "Contoso Books", "total": "1,080.00"}
    return page


# ---------------------------------------------------------------- a table-heavy page (Japanese)
SALES = [["支店", "1月", "2月", "3月", "合計"],
         ["東京", "120", "135", "150", "405"],
         ["大阪", "98", "102", "110", "310"],
         ["名古屋", "75", "80", "78", "233"],
         ["福岡", "60", "66", "71", "197"],
         ["札幌", "52", "49", "58", "159"],
         ["合計", "405", "432", "467", "1304"]]


def table_page() -> Page:
    page = Page("table_ja", "table", "ja", (760, 640))
    y = page.paragraph("2025年第1四半期 支店別売上（百万円）", 40, 40, 680, 28, kind="title", bold=True) + 10
    y = page.table(SALES, 40, y, [200, 120, 120, 120, 120], 20, 48) + 24
    page.paragraph("注：数値は税抜きの売上高です。合計は各月の支店売上の和です。", 40, y, 680, 18)
    return page


# ---------------------------------------------------------------- two-column articles, six languages
ARTICLES = {
    "en": ("The city library reopens",
           ["After two years of renovation, the central library opened its doors again on Monday. "
            "The reading rooms are brighter, and the old card catalogue has become a small museum.",
            "More than three thousand visitors came on the first day. Many of them were children, "
            "who found a new corner with picture books in twelve languages."],
           ["The building now uses half as much energy as before, thanks to new windows and solar panels "
            "on the roof.",
            "The library is open every day from nine in the morning until eight in the evening, "
            "and entry remains free for everyone."]),
    "fr": ("La bibliothèque municipale rouvre",
           ["Après deux ans de travaux, la bibliothèque centrale a rouvert ses portes lundi. "
            "Les salles de lecture sont plus claires et l'ancien fichier est devenu un petit musée.",
            "Plus de trois mille visiteurs sont venus le premier jour, dont beaucoup d'enfants, "
            "ravis de découvrir des albums en douze langues."],
           ["Le bâtiment consomme désormais deux fois moins d'énergie grâce à de nouvelles fenêtres "
            "et à des panneaux solaires.",
            "La bibliothèque est ouverte tous les jours de neuf heures à vingt heures, "
            "et l'entrée reste gratuite pour tous."]),
    "zh": ("市图书馆重新开放",
           ["经过两年的翻修，中央图书馆于周一重新开放。阅览室更加明亮，旧的卡片目录变成了一个小型博物馆。",
            "开馆第一天就有三千多名读者到访，其中很多是孩子，他们在新的绘本角找到了十二种语言的图画书。"],
           ["由于更换了新窗户并在屋顶安装了太阳能板，大楼的能耗比以前减少了一半。",
            "图书馆每天上午九点至晚上八点开放，所有人均可免费入馆。"]),
    "ja": ("市立図書館が再開",
           ["二年間の改修工事を終えて、中央図書館が月曜日に再開した。閲覧室は明るくなり、古いカード目録は小さな博物館になった。",
            "初日には三千人以上が訪れた。その多くは子どもたちで、十二の言語の絵本がある新しいコーナーを楽しんだ。"],
           ["新しい窓と屋上の太陽光パネルにより、建物のエネルギー消費は以前の半分になった。",
            "図書館は毎日午前九時から午後八時まで開館しており、入館は誰でも無料である。"]),
    "ko": ("시립 도서관 다시 문 열어",
           ["2년간의 보수 공사를 마친 중앙 도서관이 월요일에 다시 문을 열었다. 열람실은 더 밝아졌고 "
            "옛 카드 목록은 작은 박물관이 되었다.",
            "첫날에만 3천 명이 넘는 방문객이 찾았다. 그중 많은 아이들이 12개 언어의 그림책이 있는 "
            "새 코너를 즐겼다."],
           ["새 창문과 지붕의 태양광 패널 덕분에 건물의 에너지 사용량은 예전의 절반으로 줄었다.",
            "도서관은 매일 오전 9시부터 오후 8시까지 문을 열며 누구나 무료로 이용할 수 있다."]),
    "ar": ("إعادة افتتاح مكتبة المدينة",
           ["بعد عامين من التجديد، أعادت المكتبة المركزية فتح أبوابها يوم الاثنين. أصبحت قاعات القراءة "
            "أكثر إشراقا، وتحول فهرس البطاقات القديم إلى متحف صغير.",
            "زار المكتبة أكثر من ثلاثة آلاف شخص في اليوم الأول، كثير منهم من الأطفال الذين وجدوا ركنا "
            "جديدا لكتب مصورة باثنتي عشرة لغة."],
           ["أصبح المبنى يستهلك نصف الطاقة التي كان يستهلكها من قبل بفضل النوافذ الجديدة والألواح "
            "الشمسية على السطح.",
            "تفتح المكتبة أبوابها كل يوم من التاسعة صباحا حتى الثامنة مساء، والدخول مجاني للجميع."]),
}


def article(language: str) -> Page:
    title, first, second = ARTICLES[language]
    page = Page(f"article_{language}", "article", language, (900, 720))
    y0 = page.paragraph(title, 40, 36, 820, 32, kind="title", bold=True) + 16
    col, gap = 400, 20
    # reading order: the first column is on the left, or on the right for a right-to-left script
    xs = (40 + col + gap, 40) if language in RTL else (40, 40 + col + gap)
    for x, paragraphs in zip(xs, (first, second), strict=True):
        y = y0
        for text in paragraphs:
            y = page.paragraph(text, x, y, col, 19) + 14
    return page


# ---------------------------------------------------------------- a PDF of three pages (Chromium)
PDF_PAGES = [
    ("Annual report 2025", ["This short report has three pages.",
                            "It was printed to PDF by Chromium from HTML, so it has a text layer."]),
    ("Visitors by month", ["January 8120", "February 7960", "March 9410"]),
    ("多语言摘要", ["图书馆全年接待读者十万人次。", "Die Bibliothek hatte 100000 Besuche.", "도서관 방문객은 10만 명이었다."]),
]


def pdf_html() -> str:
    pages = []
    for title, lines in PDF_PAGES:
        body = "".join(f"<p>{line}</p>" for line in lines)
        pages.append(f'<section><h1>{title}</h1>{body}</section>')
    style = ("@page{size:A5;margin:18mm} body{font-family:'Noto Sans','Noto Sans CJK SC',sans-serif}"
             "section{page-break-after:always} section:last-child{page-break-after:auto}"
             "h1{font-size:22pt} p{font-size:13pt}")
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>{''.join(pages)}</body></html>"


async def _print_pdf(path: Path) -> None:
    from cookbook.kit import browser

    async with browser.launch() as chromium:
        page = await browser.new_page(chromium)
        await page.set_content(pdf_html())
        await page.pdf(path=str(path), prefer_css_page_size=True, print_background=False)


def report_pdf(out: Path) -> dict:
    path = out / "report.pdf"
    asyncio.run(_print_pdf(path))
    truth = {"pdf": path.name, "pages": [{"title": t, "lines": [t, *lines]} for t, lines in PDF_PAGES]}
    (out / "report.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    return truth


def make(out: Path = OUT, pdf: bool = True) -> list[str]:
    """Write every document and its ground truth into ``out``; return the image names."""
    out.mkdir(parents=True, exist_ok=True)
    pages = [receipt(lang) for lang in RECEIPTS] + [invoice(), table_page()] + [article(lang) for lang in ARTICLES]
    names = [p.save(out)["image"] for p in pages]
    index = [{"image": p.name + ".png", "truth": p.name + ".json", "kind": p.kind, "language": p.language} for p in pages]
    (out / "index.json").write_text(json.dumps(index, ensure_ascii=False, indent=1), encoding="utf-8")
    if pdf:
        report_pdf(out)
    return names


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    print("\n".join(make(target)))
