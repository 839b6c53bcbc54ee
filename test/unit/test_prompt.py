"""Prompt building: chat framing, image slots, streaming pieces, actions, template files."""

import pytest
import torch

from janusvln_ros.model.prompt import (ACTION_NAMES, default_template_path, load_template,
                                       parse_action_name, PromptBuilder, PromptError)
from janusvln_ros.model.tokenizer import load_bundled_tokenizer, QWEN25VL_CHAT_TEMPLATE

INSTRUCTION = 'Leave the bedroom, turn left and stop next to the plant.'


@pytest.fixture(scope='module')
def tokenizer():
    return load_bundled_tokenizer()


@pytest.fixture(scope='module')
def builder(tokenizer):
    return PromptBuilder(tokenizer)


def _ids(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def test_parity_prompt_structure(tokenizer, builder):
    counts = [4, 20, 6]
    ids = builder.parity_ids(INSTRUCTION, counts)
    assert ids.dtype == torch.long and ids.dim() == 1
    seq = ids.tolist()
    im_start, im_end = _ids(tokenizer, '<|im_start|>')[0], _ids(tokenizer, '<|im_end|>')[0]
    assert seq[:3] == _ids(tokenizer, '<|im_start|>system\n')
    assert seq[-3:] == _ids(tokenizer, '<|im_start|>assistant\n')
    assert seq.count(im_start) == 3 and seq.count(im_end) == 2
    assert (ids == 151655).sum() == sum(counts)
    starts = [i for i, t in enumerate(seq) if t == 151652]
    ends = [i for i, t in enumerate(seq) if t == 151653]
    assert len(starts) == len(ends) == 3
    # each slot is vision_start + n pads + vision_end, in order
    assert [e - s - 1 for s, e in zip(starts, ends)] == counts
    assert all(t == 151655 for s, e in zip(starts, ends) for t in seq[s + 1:e])
    text = tokenizer.decode(seq)
    assert INSTRUCTION in text
    for name in ACTION_NAMES:
        assert name in text
    # the user turn holds the images, the system turn does not
    user = text.index('<|im_start|>user')
    assert text.index('<|vision_start|>') > user
    # identical to tokenizing the rendered chat with the pads written out
    rendered = builder.parity_text(INSTRUCTION, 3)
    for n in counts:
        rendered = rendered.replace('<|image_pad|>', '<|placeholder|>' * n, 1)
    assert seq == _ids(tokenizer, rendered.replace('<|placeholder|>', '<|image_pad|>'))


def test_single_image_has_no_history_label(tokenizer, tmp_path):
    src = default_template_path().read_text()
    custom = tmp_path / 'labels.yaml'
    custom.write_text(src.replace("history_label: ''", "history_label: 'Earlier views:'")
                      .replace("current_label: ''", "current_label: 'Now:'"))
    labelled = PromptBuilder(tokenizer, custom)
    one = labelled.parity_text(INSTRUCTION, 1)
    three = labelled.parity_text(INSTRUCTION, 3)
    assert 'Earlier views:' not in one and 'Now:<|vision_start|>' in one
    assert three.index('Earlier views:') < three.index('Now:') < three.rindex('<|vision_start|>')


def test_streaming_pieces_form_a_chat_prompt(tokenizer, builder):
    prefix = builder.prefix_ids(INSTRUCTION)
    query = builder.query_ids()
    frames = [builder.frame_ids(n) for n in (3, 5)]
    seq = torch.cat([prefix, *frames, query]).tolist()
    messages = [{'role': 'system', 'content': builder.template['system']},
                {'role': 'user', 'content': [
                    {'type': 'text', 'text': builder._fill(builder.template['streaming_prefix'],
                                                           INSTRUCTION)},
                    {'type': 'image'}, {'type': 'image'},
                    {'type': 'text', 'text': builder._fill(builder.template['streaming_query'],
                                                           INSTRUCTION)}]}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    text = text.replace('<|image_pad|>', '<|image_pad|>' * 3, 1)
    text = text.replace('<|vision_end|><|vision_start|><|image_pad|><|vision_end|>',
                        '<|vision_end|><|vision_start|>' + '<|image_pad|>' * 5 + '<|vision_end|>')
    assert seq == _ids(tokenizer, text)
    assert INSTRUCTION in tokenizer.decode(prefix.tolist())
    assert tokenizer.decode(query.tolist()).endswith('<|im_end|>\n<|im_start|>assistant\n')
    assert builder.frame_ids(2).tolist() == [151652, 151655, 151655, 151653]


def test_actions_and_parsing(tokenizer, builder):
    ids = builder.action_token_ids()
    assert set(ids) == set(ACTION_NAMES)
    for name, toks in ids.items():
        assert tokenizer.decode(toks) == name
    assert 151645 in builder.eos_token_ids and 151643 in builder.eos_token_ids
    assert parse_action_name('TURN_LEFT') == 'TURN_LEFT'
    assert parse_action_name(' MOVE_FORWARD\n') == 'MOVE_FORWARD'
    for junk in ('turn_left', 'MOVE_FORWARD.', 'TURN_LEFT TURN_LEFT', '', 'MOVEMOVE'):
        assert parse_action_name(junk) == 'STOP'


def test_template_errors(tokenizer, tmp_path):
    assert load_template(None)['actions'] == ACTION_NAMES
    with pytest.raises(PromptError, match='not found'):
        PromptBuilder(tokenizer, tmp_path / 'missing.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('system: hi\nafter_images: no placeholder\nstreaming_prefix: "{instruction}"\n')
    with pytest.raises(PromptError, match='instruction'):
        load_template(bad)
    bad.write_text('system: hi\nafter_images: "{instruction}"\n'
                   'streaming_prefix: "{instruction}"\nactions: [STOP, GO]\n')
    with pytest.raises(PromptError, match='actions'):
        load_template(bad)


def test_default_template_is_the_projects_own():
    text = default_template_path().read_text()
    assert 'janusvln_ros' in text and '{instruction}' in text
    assert QWEN25VL_CHAT_TEMPLATE.count('<|im_start|>') == 3
