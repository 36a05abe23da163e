"""Fine-tuning (13): the answer-only mask token by token, the collator on the real tiny processor,
the training-memory rule against PEFT's count and a measured step, adapter save/load/merge."""

from __future__ import annotations

import json

import pytest

from cookbook import finetune as ft
from cookbook import grounding, memory

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny():
    import cookbook as cb

    model, processor = cb.load("tiny")
    cb.recipe.set_image_budget(processor, max_pixels=128 * 128, min_pixels=128 * 128)
    return model, processor


def test_answer_mask_token_by_token():
    start, end = [1, 2], 9
    ids = [5, 1, 2, 7, 8, 9, 3, 4, 1, 2, 6, 9, 3, 0, 0]
    #      u  <assistant> a  a  E  \n u  <assistant> a E  \n pad pad
    want = [0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0]
    assert ft.answer_mask(ids, start, end) == [bool(w) for w in want]
    assert ft.answer_mask([5, 6, 7], start, end) == [False] * 3          # no assistant turn: nothing trained
    assert ft.answer_mask([1, 2, 7, 8], start, end) == [False, False, True, True]   # cut off before <|im_end|>


def test_shapes_split_truth_and_held_out():
    a, again, other = ft.shapes_split(6, seed=0), ft.shapes_split(6, seed=0), ft.shapes_split(6, seed=1000)
    assert [e["box"] for e in a] == [e["box"] for e in again]
    assert not {e["images"][0].tobytes() for e in a} & {e["images"][0].tobytes() for e in other}
    for e in a:
        w, h = e["images"][0].size
        answer = json.loads(e["messages"][1]["content"][0]["text"])[0]
        assert [round(v / 1000 * w, 3) for v in answer["bbox_2d"]] == [round(v, 3) for v in e["box"]]
        assert e["messages"][0]["content"][0] == {"type": "image"}


def test_an_unnamed_split_asks_for_the_shape_and_keeps_the_truth():
    named, unnamed = ft.shapes_split(4, seed=3), ft.shapes_split(4, seed=3, named=False)
    for n, u in zip(named, unnamed, strict=True):
        assert n["images"][0].tobytes() == u["images"][0].tobytes() and n["box"] == u["box"]
        assert n["label"] == u["label"] and n["messages"][1] == u["messages"][1]   # same answer, label included
        assert n["label"] in n["messages"][0]["content"][1]["text"]
        assert u["messages"][0]["content"][1]["text"] == ft.REFER.format(ref="the shape")


def test_with_images_fills_placeholders_without_changing_input():
    e = ft.shapes_split(1, seed=3)[0]
    filled = ft.with_images(e["messages"], e["images"])
    assert filled[0]["content"][0]["image"] is e["images"][0]
    assert e["messages"][0]["content"][0] == {"type": "image"}
    with pytest.raises(ValueError, match="left over"):
        ft.with_images(e["messages"], e["images"] * 2)


def test_collator_trains_exactly_the_answer(tiny):
    _, processor = tiny
    examples = ft.shapes_split(2, seed=7)
    examples[0]["messages"][0]["content"][1]["text"] += " Take your time and be precise."   # rows of different length
    collator = ft.AnswerOnlyCollator(processor)
    batch = collator(examples)
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    for row, example in enumerate(examples):
        ids, labels, mask = (batch[k][row].tolist() for k in ("input_ids", "labels", "attention_mask"))
        trained = [i for i, lab in zip(ids, labels, strict=True) if lab != ft.IGNORE_INDEX]
        answer = example["messages"][1]["content"][0]["text"]
        assert tok.decode(trained) == answer + "<|im_end|>\n"
        for i, (token, label, m) in enumerate(zip(ids, labels, mask, strict=True)):
            assert label in (token, ft.IGNORE_INDEX)
            if token == image_id or m == 0:
                assert label == ft.IGNORE_INDEX, f"position {i}: image pad or padding trained"
        first = labels.index(next(lab for lab in labels if lab != ft.IGNORE_INDEX))
        prompt = tok.decode(ids[:first])
        assert prompt.endswith("<|im_start|>assistant\n") and "Locate" in prompt
    assert batch["attention_mask"][1, -1] == 0, "the shorter row is padded on the right"


def test_wrong_marker_masks_everything_and_the_loss_says_so(tiny):
    model, processor = tiny
    collator = ft.AnswerOnlyCollator(processor)
    collator.start = processor.tokenizer("<|im_start|>assistant:", add_special_tokens=False)["input_ids"]
    batch = collator(ft.shapes_split(2, seed=1))
    assert int((batch["labels"] != ft.IGNORE_INDEX).sum()) == 0
    with torch.no_grad():
        loss = model(**batch).loss
    assert not torch.isfinite(loss) or loss.item() == 0.0


def test_lora_targets_and_parameter_count_match_peft(tiny):
    from peft import LoraConfig, get_peft_model

    import cookbook as cb

    model, _ = tiny
    language = ft.lora_targets(model)
    assert language and all(".language_model.layers." in "." + n for n in language)
    assert all(".visual." in "." + n for n in set(ft.lora_targets(model, ("language", "merger"))) - set(language))
    with pytest.raises(ValueError, match="unknown parts"):
        ft.lora_targets(model, ("lm_head",))
    fresh, _ = cb.load("tiny")
    peft_model = get_peft_model(fresh, LoraConfig(r=8, target_modules=language))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert trainable == ft.lora_parameters(model.config, 8)


def test_training_memory_rules():
    lora, full, qlora = (ft.training_memory("8B", m, image_tokens=1024, text_tokens=512) for m in ("lora", "full", "qlora"))
    assert qlora.total < lora.total < full.total
    assert lora.weights == memory.weight_bytes("8B", "bf16") and qlora.weights == memory.weight_bytes("8B", "int4")
    assert full.trainable_params == memory.parameters("8B").total
    assert full.weights + full.states == 16 * full.trainable_params          # ZeRO's 16 bytes per parameter
    no_ckpt = ft.training_memory("8B", "lora", image_tokens=1024, text_tokens=512, checkpointing=False)
    assert no_ckpt.activations > 3 * lora.activations
    assert ft.training_memory("8B", "lora", batch=4).activations == 4 * ft.training_memory("8B", "lora").activations
    with pytest.raises(ValueError, match="method"):
        ft.training_memory("8B", "dora")


def test_training_memory_rule_against_a_measured_step(tiny):
    import cookbook as cb

    model, processor = cb.load("tiny")
    cb.recipe.set_image_budget(processor, max_pixels=128 * 128, min_pixels=128 * 128)
    batch = ft.AnswerOnlyCollator(processor)(ft.shapes_split(16, seed=11))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        model.train()
        model(**batch).loss.backward()
        optimizer.step()

    _, measured = ft.peak_memory(step)
    tokens = batch["input_ids"].numel()
    visual = int((batch["input_ids"] == model.config.image_token_id).sum())
    rule = ft.training_memory(model.config, "full", image_tokens=visual, text_tokens=tokens - visual,
                              checkpointing=False, dtype="fp32", overhead_gib=0)
    added = rule.total - rule.weights
    assert 0.5 < measured / added < 2.0, (measured, added)


def test_score_boxes_reference_is_perfect_and_noise_is_zero():
    examples = ft.shapes_split(5, seed=21)
    reference = [e["messages"][1]["content"][0]["text"] for e in examples]
    assert ft.score_boxes(reference, examples)["accuracy@0.5"] == 1.0
    assert ft.score_boxes(reference, examples)["mean_iou"] > 0.99
    noise = ["no box here", "[1, 2", "", '{"bbox_2d": [0, 0, 5, 5]}', "```json\n[]\n```"]
    scores = ft.score_boxes(noise, examples)
    assert scores["accuracy@0.5"] == 0.0 and scores["with_box"] == 0.2
    assert ft.score_boxes(reference, examples)["label"] == 1.0
    relabelled = [r.replace(e["label"], "nothing at all") for r, e in zip(reference, examples, strict=True)]
    assert ft.score_boxes(relabelled, examples) | {"label": 1.0} == ft.score_boxes(reference, examples)
    assert ft.score_boxes(relabelled, examples)["label"] == 0.0 and scores["label"] == 0.0
    boxes = [grounding.parse(r, 128, 128)[0]["box"] for r in reference]
    assert grounding.refcoco_accuracy(boxes, [e["box"] for e in examples]) == 1.0


def test_adapter_saves_loads_and_merges(tiny, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForImageTextToText

    import cookbook as cb

    base, processor = cb.load("tiny")
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=ft.lora_targets(base)))
    with torch.no_grad():                                   # a trained adapter: B is no longer zero
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    batch = ft.AnswerOnlyCollator(processor)(ft.shapes_split(2, seed=5))
    peft_model.eval()
    with torch.no_grad():
        reference = peft_model(**batch).logits
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")

    plain, _ = cb.load("tiny")
    reloaded = PeftModel.from_pretrained(cb.load("tiny")[0], tmp_path / "adapter").eval()
    again = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, reference, atol=1e-4)
        assert torch.allclose(again(**batch).logits, reference, atol=1e-4)
        assert (plain(**batch).logits - reference).abs().max() > 1e-3        # without the adapter: another model
