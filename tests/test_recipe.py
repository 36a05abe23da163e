"""cookbook.recipe (saved from 01): the plain transformers recipe and the cost of an image."""

import torch

import cookbook as cb
from cookbook.recipe import ask, image_tokens


def test_ask_is_generate_without_the_prompt(tiny, photo):
    model, processor = tiny
    messages = [{"role": "user", "content": [{"type": "image", "image": photo}, {"type": "text", "text": "Describe."}]}]
    answer = ask(model, processor, messages, max_new_tokens=6)
    enc = processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                        return_dict=True, return_tensors="pt")
    assert "pixel_values" in enc  # the recipe's return_dict=True brings the picture along
    with torch.inference_mode():
        full = model.generate(**enc, max_new_tokens=6)  # the tiny model decodes greedily: same ids
    assert answer == processor.decode(full[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Describe." not in answer and answer == cb.chat(model, processor, messages, max_new_tokens=6,
                                                           do_sample=False, presence_penalty=0).text


def test_image_tokens_equals_the_placeholders_in_the_prompt(tiny, photo):
    model, processor = tiny
    for image in (photo, photo.resize((1000, 700)), photo.resize((40, 33))):
        enc = cb.inputs(processor, [cb.messages.user(image, "Hi")])
        assert image_tokens(processor, image) == int((enc["input_ids"] == model.config.image_token_id).sum())
