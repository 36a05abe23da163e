"""09's long-document recipe: the binder's truth sits on the pages, the PDF round trip keeps them, the page
budget fits the context by the processor's own count, and ANLS behaves as DocVQA's."""

from __future__ import annotations

import numpy as np
import pytest

from cookbook import documents as D
from cookbook.kit import scans as S


def test_every_binder_answer_is_printed_on_its_page_only():
    pages, truth = S.binder()
    assert len(pages) == len(truth["pages"]) == 6 and len(truth["questions"]) == 3
    texts = [S.full_text(S.document(name)[1]) for name in truth["pages"]]
    for q in truth["questions"]:
        on = [n for n, text in enumerate(texts, 1) if any(a in text for a in q["answers"])]
        assert on == [q["page"]], q
        assert q["question"].endswith("?")


def test_the_binder_survives_a_pdf_round_trip(tmp_path):
    pages, _ = S.binder()
    path = tmp_path / "binder.pdf"
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=144)
    back = D.pdf_pages(path, dpi=144)
    assert [p.size for p in back] == [p.size for p in pages]
    for a, b in zip(pages, back, strict=True):   # JPEG inside the PDF: close, not equal
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).mean() < 3


def test_page_budget_shares_the_context():
    assert D.page_budget(8, 256 * 1024) == D.LONG_PAGE_TOKENS[1]            # the cookbook's cap binds
    assert D.page_budget(100, 32 * 1024) == (32 * 1024 - 2048) // 100 - 2    # the context binds
    assert D.page_budget(8, 4096, reserve=1024, max_tokens=10_000) == 3072 // 8 - 2
    for pages, context in [(3000, 32 * 1024), (8, 1000), (0, 8192)]:
        with pytest.raises(ValueError):
            D.page_budget(pages, context)


def test_document_message_fits_the_budget_by_the_processors_count(tiny):
    """Every page's visual tokens (the processor's image_grid_thw) stay within the budget, and the whole
    prompt within the context."""
    import cookbook as cb

    _, processor = tiny
    pages, truth = S.binder()
    context, reserve = 3000, 600
    message = D.document_message(pages, truth["questions"][0]["question"], context, reserve=reserve)
    budget = D.page_budget(len(pages), context, reserve)
    assert [p["type"] for p in message["content"]] == ["image"] * len(pages) + ["text"]
    encoded = cb.inputs(processor, [message])
    per_page = [int(g.prod()) // 4 for g in encoded["image_grid_thw"]]
    assert len(per_page) == len(pages) and max(per_page) <= budget and min(per_page) >= budget // 3
    assert encoded["input_ids"].shape[1] <= context - reserve + 200


def test_anls_as_docvqa_scores_it():
    assert D.anls("7,70", ["7,70"]) == 1.0
    assert D.anls("  INV-2025-0042 ", ["inv-2025-0042"]) == 1.0            # case and spaces do not count
    assert D.anls("INV-2025-0043", ["INV-2025-0042"]) == pytest.approx(1 - 1 / 13)
    assert D.anls("7.70", ["7,70"]) == pytest.approx(0.75)
    assert D.anls("23", ["23.50"]) == 0.0                                   # distance 0.6: over the threshold
    assert D.anls("", ["9,300"]) == 0.0
    assert D.anls("9300", ["9,300", "9300"]) == 1.0                         # best over the accepted answers
