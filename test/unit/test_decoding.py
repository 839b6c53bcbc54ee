"""Constrained action decoding gives the same action as greedy generate-then-parse."""

import random

import pytest
import torch

from janusvln_ros.core.decoding import ConstrainedActionDecoder
from janusvln_ros.core.types import Action

# A toy vocabulary: pieces of the action words, non-canonical splits, whitespace, junk,
# a special token that decodes to nothing and two EOS ids.
VOCAB = ['MOVE', '_FORWARD', 'MOVE_', 'FORWARD', 'TURN', '_LEFT', '_RIGHT', 'STOP', ' ', '\n',
         'X', 'LEFT', 'TURN_', 'RIGHT', 'ST', 'OP', '<special>', '<eos>', '<im_end>', '_', 'S']
EOS = {VOCAB.index('<eos>'), VOCAB.index('<im_end>')}
SPECIAL = {VOCAB.index('<special>')} | EOS


def decode_text(ids):
    return ''.join('' if i in SPECIAL else VOCAB[i] for i in ids)


def reference(table, first, max_new_tokens, strip=True):
    """Greedy generate to EOS or the budget, then an exact-match parse (the released rule)."""
    out, logits = [], first
    while len(out) < max_new_tokens:
        tok = int(torch.argmax(logits))
        out.append(tok)
        if tok in EOS:
            break
        logits = table[tok]
    text = decode_text(out)
    text = text.strip() if strip else text
    return {a.name: a for a in Action}.get(text, Action.STOP), out


def random_table(rng, gen):
    """Markov logits biased towards well-formed answers (so all outcomes occur)."""
    table = torch.randn(len(VOCAB), len(VOCAB), generator=gen)
    nexts = {'MOVE': '_FORWARD', 'MOVE_': 'FORWARD', 'TURN': rng.choice(['_LEFT', '_RIGHT']),
             'TURN_': rng.choice(['LEFT', 'RIGHT']), 'ST': 'OP'}
    for a, b in nexts.items():
        table[VOCAB.index(a), VOCAB.index(b)] += rng.uniform(0, 4)
    for word in ('_FORWARD', 'FORWARD', '_LEFT', '_RIGHT', 'LEFT', 'RIGHT', 'OP', 'STOP', ' '):
        eos = VOCAB.index(rng.choice(['<eos>', '<im_end>']))
        table[VOCAB.index(word), eos] += rng.uniform(0, 4)
    return table


@pytest.mark.parametrize('strip', [True, False])
def test_matches_generate_then_parse(strip):
    rng = random.Random(0)
    gen = torch.Generator().manual_seed(0)
    outcomes = {a: 0 for a in Action}
    accepted = 0
    for trial in range(3000):
        table = random_table(rng, gen)
        first = torch.randn(len(VOCAB), generator=gen)
        first[VOCAB.index(rng.choice(['MOVE', 'TURN', 'STOP', 'MOVE_', 'TURN_', ' ', 'ST']))] += 3
        budget = rng.choice([1, 2, 3, 24])
        want, out = reference(table, first, budget, strip)
        calls = []

        def step(tok, table=table, calls=calls):
            calls.append(tok)
            return table[tok]

        dec = ConstrainedActionDecoder(decode_text, EOS, max_new_tokens=budget, strip=strip)
        got = dec.decode(first, step)
        assert got.action == want, (trial, out, got)
        assert got.forward_passes == len(calls) <= len(out)
        assert list(got.token_ids) == out[:len(got.token_ids)]  # followed the greedy path
        outcomes[got.action] += 1
        accepted += got.accepted
        if got.accepted:
            assert list(got.token_ids) == out
    assert all(n > 50 for n in outcomes.values()), outcomes
    assert accepted > 300


def test_forward_budget_is_word_length_plus_one():
    ids = [VOCAB.index('TURN'), VOCAB.index('_LEFT'), VOCAB.index('<im_end>')]
    table = torch.full((len(VOCAB), len(VOCAB)), -10.0)
    table[ids[0], ids[1]] = 5
    table[ids[1], ids[2]] = 5
    first = torch.full((len(VOCAB),), -10.0)
    first[ids[0]] = 5
    dec = ConstrainedActionDecoder(decode_text, EOS)
    res = dec.decode(first, lambda t: table[t])
    assert res.action == Action.TURN_LEFT and res.accepted
    assert res.forward_passes == 2 and res.text == 'TURN_LEFT'
    # a junk token stops at once: no forward pass at all
    first2 = torch.full((len(VOCAB),), -10.0)
    first2[VOCAB.index('X')] = 5
    res = dec.decode(first2, lambda t: pytest.fail('must not decode further'))
    assert res.action == Action.STOP and not res.accepted and res.forward_passes == 0


def test_complete_word_without_eos_is_stop():
    ids = [VOCAB.index('STOP'), VOCAB.index('X')]
    table = torch.full((len(VOCAB), len(VOCAB)), -10.0)
    table[ids[0], ids[1]] = 5
    first = torch.full((len(VOCAB),), -10.0)
    first[VOCAB.index('MOVE')] = 5
    table[VOCAB.index('MOVE'), VOCAB.index('_FORWARD')] = 5
    table[VOCAB.index('_FORWARD'), VOCAB.index('X')] = 5
    res = ConstrainedActionDecoder(decode_text, EOS).decode(first, lambda t: table[t])
    assert res.action == Action.STOP and res.text == 'MOVE_FORWARDX'


def test_bad_arguments():
    with pytest.raises(ValueError):
        ConstrainedActionDecoder(decode_text, [])
    with pytest.raises(ValueError):
        ConstrainedActionDecoder(decode_text, EOS, max_new_tokens=0)
