"""cookbook.retrieval (15): last-token pooling, normalisation, the official prompt formats, the reranker's
yes/no rule, recall/MRR/nDCG on hand-checked rankings; the tiny stand-ins and the generated collection."""

from __future__ import annotations

import itertools
import math

import pytest

from cookbook import retrieval as rt
from cookbook.kit import fact_pages, tiny_retrieval

torch = pytest.importorskip("torch")


# --- pooling and normalisation ---------------------------------------------------------------------------------

def official_pooling(hidden, mask):
    """The official embedder's _pooling_last (flip the mask, first 1 from the end), written again for the test."""
    col = mask.shape[1] - mask.flip(dims=[1]).argmax(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0]), col]


def test_last_token_right_and_left_padding():
    hidden = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert torch.equal(rt.last_token(hidden, right), hidden[[0, 1], [2, 4]])
    assert torch.equal(rt.last_token(hidden, left), hidden[[0, 1], [4, 4]])
    for mask in (right, left):
        assert torch.equal(rt.last_token(hidden, mask), official_pooling(hidden, mask))


def test_shorten_is_a_normalised_prefix():
    vectors = torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    short = rt.shorten(vectors, 4)
    assert short.shape == (3, 4)
    assert torch.allclose(short.norm(dim=1), torch.ones(3))
    assert torch.allclose(short * vectors[:, :4].norm(dim=1, keepdim=True), vectors[:, :4], atol=1e-6)


def test_search_returns_cosine_top_k():
    index = torch.eye(4)
    queries = torch.nn.functional.normalize(torch.tensor([[0.1, 0.9, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0]]), dim=-1)
    scores, rows = rt.search(index, queries, k=2)
    assert rows.tolist()[0] == [1, 3] and rows.tolist()[1][0] == 0
    assert scores[1, 0].item() == pytest.approx(1.0)
    assert rt.search(index, queries, k=10)[1].shape == (2, 4)  # k capped at the index size


# --- prompt formats ----------------------------------------------------------------------------------------------

def test_embedding_conversation_follows_the_official_rules():
    conv = rt.embedding_conversation("a question", image="IMG", instruction="Find the page")
    assert conv[0] == {"role": "system", "content": [{"type": "text", "text": "Find the page."}]}  # full stop added
    assert [p["type"] for p in conv[1]["content"]] == ["image", "text"]  # image first, then text
    assert rt.embedding_conversation("x", instruction="Why?")[0]["content"][0]["text"] == "Why?"
    assert rt.embedding_conversation("x")[0]["content"][0]["text"] == "Represent the user's input."
    assert rt.embedding_conversation()[1]["content"] == [{"type": "text", "text": "NULL"}]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from transformers import AutoProcessor, Qwen3VLModel

    folder = tiny_retrieval.build("embedding", root=tmp_path_factory.mktemp("emb"))
    return Qwen3VLModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder, padding_side="right")


@pytest.fixture(scope="module")
def reranker(tmp_path_factory):
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    folder = tiny_retrieval.build("reranker", root=tmp_path_factory.mktemp("rr"))
    return (Qwen3VLForConditionalGeneration.from_pretrained(folder).eval(),
            AutoProcessor.from_pretrained(folder, padding_side="left"))


def test_embedding_prompt_text(embedder):
    _, processor = embedder
    text = processor.apply_chat_template([rt.embedding_conversation("hello", instruction="Find it.")],
                                         tokenize=False, add_generation_prompt=True)[0]
    assert text == ("<|im_start|>system\nFind it.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
                    "<|im_start|>assistant\n")


def test_embed_is_normalised_and_padding_does_not_change_a_vector(embedder):
    model, processor = embedder
    page = fact_pages.pages(2)[0]["image"]
    items = [{"text": "short"}, {"text": "a much longer question about the locker code of a depot"},
             {"image": page}]
    together = rt.embed(model, processor, items, batch_size=3)
    assert together.shape == (3, model.config.text_config.hidden_size)
    assert torch.allclose(together.norm(dim=1), torch.ones(3), atol=1e-5)
    alone = torch.cat([rt.embed(model, processor, [it]) for it in items])  # no padding at all
    assert torch.allclose(together, alone, atol=1e-4)  # the short row was right-padded in the batch


def test_embed_with_left_padding_gives_the_same_vectors(embedder):
    from transformers import AutoProcessor

    model, right = embedder
    left = AutoProcessor.from_pretrained(right.tokenizer.name_or_path, padding_side="left")
    items = [{"text": "short"}, {"text": "a much longer question about the locker code of a depot"}]
    assert torch.allclose(rt.embed(model, left, items), rt.embed(model, right, items), atol=1e-4)


def test_rerank_prompt_matches_the_official_template(reranker):
    _, processor = reranker
    conv = rt.rerank_conversation({"text": "Q?"}, {"text": "D."}, instruction="Find it.")
    text = processor.apply_chat_template([conv], tokenize=False, add_generation_prompt=True)[0]
    # examples/reranker_template.jinja of QwenLM/Qwen3-VL-Embedding, rendered with the same three texts
    assert text == ("<|im_start|>system\n" + rt.RERANK_SYSTEM + "<|im_end|>\n<|im_start|>user\n"
                    "<Instruct>: Find it.<Query>:Q?\n<Document>:D.<|im_end|>\n<|im_start|>assistant\n")


def test_rerank_score_is_sigmoid_of_yes_minus_no_logit(reranker):
    model, processor = reranker
    query = {"text": "What is the locker code at the Amber depot?"}
    docs = [{"text": "Locker code: 1234"}, {"image": fact_pages.pages(1)[0]["image"]}, {"text": "no"}]
    scores = rt.rerank(model, processor, query, docs, batch_size=3)
    vocab = processor.tokenizer.get_vocab()
    for doc, score in zip(docs, scores, strict=True):
        inputs = processor.apply_chat_template([rt.rerank_conversation(query, doc)], tokenize=True,
                                               add_generation_prompt=True, return_dict=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1]
        assert 0.0 < score < 1.0
        assert score == pytest.approx(torch.sigmoid(logits[vocab["yes"]] - logits[vocab["no"]]).item(), abs=1e-4)
    assert rt.rerank(model, processor, query, docs[:1]) == pytest.approx(scores[:1], abs=1e-4)  # left padding


# --- metrics -------------------------------------------------------------------------------------------------------

def test_metrics_on_hand_checked_rankings():
    ranking = ["a", "b", "c", "d"]
    assert rt.recall_at(ranking, {"b"}, 1) == 0.0
    assert rt.recall_at(ranking, {"b"}, 2) == 1.0
    assert rt.recall_at(ranking, {"b", "d"}, 2) == 0.5
    assert rt.reciprocal_rank(ranking, {"c"}) == pytest.approx(1 / 3)
    assert rt.reciprocal_rank(ranking, {"d"}, k=3) == 0.0
    assert rt.ndcg_at(ranking, {"b"}) == pytest.approx(1 / math.log2(3))
    assert rt.ndcg_at(ranking, {"a", "c"}) == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)))
    scores = rt.retrieval_scores([ranking, ["b", "a", "c", "d"]], [{"b"}, {"b"}], ks=(1, 2))
    assert scores == pytest.approx({"recall@1": 0.5, "recall@2": 1.0, "MRR@10": 0.75,
                                    "nDCG@10": (1 / math.log2(3) + 1) / 2})


def test_reference_scores_one_and_a_perturbed_ranking_less():
    ids = [f"p{i}" for i in range(12)]
    relevant = [{i} for i in ids]
    reference = [rt.reference_ranking(rel, ids) for rel in relevant]
    assert set(rt.retrieval_scores(reference, relevant).values()) == {1.0}
    swapped = [r[1:2] + r[:1] + r[2:] for r in reference]  # the relevant page at rank 2
    scores = rt.retrieval_scores(swapped, relevant)
    assert scores["recall@1"] == 0.0 and scores["recall@5"] == 1.0 and scores["MRR@10"] == 0.5


def test_random_expectation_is_the_mean_over_all_orders():
    ids = ["a", "b", "c", "d", "e"]
    perms = [list(p) for p in itertools.permutations(ids)]
    exact = rt.retrieval_scores(perms, [{"a"}] * len(perms), ks=(1, 2, 5))
    assert rt.random_expectation(5, ks=(1, 2, 5)) == pytest.approx(exact)
    assert rt.random_ranking(ids, seed=3) == rt.random_ranking(ids, seed=3)
    assert sorted(rt.random_ranking(ids, seed=3)) == ids


# --- tiny stand-ins and the generated collection --------------------------------------------------------------------

def test_tiny_stand_ins_have_yes_and_no_tokens_and_resolve(reranker):
    _, processor = reranker
    assert processor.tokenizer.tokenize("yes") == ["yes"] and processor.tokenizer.tokenize("no") == ["no"]
    assert tiny_retrieval.resolve("Qwen/Qwen3-VL-Embedding-8B", "Qwen/Qwen3-VL-8B-Instruct") == \
        "Qwen/Qwen3-VL-Embedding-8B"
    folder = tiny_retrieval.resolve("Qwen/Qwen3-VL-Reranker-8B", "tiny-instruct")  # a smoke run: the stand-in
    assert "reranker-tiny" in folder and (tiny_retrieval.build("reranker") / "config.json").is_file()
    with pytest.raises(ValueError):
        tiny_retrieval.resolve("Qwen/Qwen3-VL-2B-Instruct", "tiny")
    with pytest.raises(ValueError):
        tiny_retrieval.build("clip")


def test_generated_pages_are_consistent():
    pages = fact_pages.pages(24)
    questions = fact_pages.queries(pages)
    assert len({p["answer"] for p in pages}) == 24 and len({p["id"] for p in pages}) == 24
    for q in questions:
        place = q["query"].split(" at the ")[1].split()[0]
        owners = [p for p in pages if place in p["title"]]
        assert [p["id"] for p in owners] == [q["relevant"]]  # exactly one page names the place
        assert q["answer"] in owners[0]["fact"] and sum(q["answer"] in p["fact"] for p in pages) == 1
    bg = fact_pages.BACKGROUND
    for page in pages[:6]:
        img = page["image"]
        for x1, y1, x2, y2 in page["text_boxes"]:  # each drawn line put ink inside its box
            assert any(img.getpixel((x, y)) != bg for x in range(x1, x2) for y in range(y1, y2))
        ink_left = [img.getpixel((x, y)) for x in range(0, 8) for y in range(img.height)]
        assert set(ink_left) == {bg}  # the left margin is blank
    again = fact_pages.pages(24)
    assert [p["answer"] for p in again] == [p["answer"] for p in pages]
    assert again[5]["image"].tobytes() == pages[5]["image"].tobytes()
    assert fact_pages.pages(24, seed=1)[0]["answer"] != pages[0]["answer"] or \
        fact_pages.pages(24, seed=1)[1]["answer"] != pages[1]["answer"]
