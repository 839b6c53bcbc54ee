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


# --------------------------------------------------------------- speculative verification
ACTION_IDS = {'STOP': [VOCAB.index('STOP')],
              'MOVE_FORWARD': [VOCAB.index('MOVE'), VOCAB.index('_FORWARD')],
              'TURN_LEFT': [VOCAB.index('TURN'), VOCAB.index('_LEFT')],
              'TURN_RIGHT': [VOCAB.index('TURN'), VOCAB.index('_RIGHT')]}


class ToyModel:
    """A cache-holding toy LM: next logits depend on the last token AND the cache length.

    A wrong ``discard`` (cache too long or too short) shifts every later logit row, so the
    greedy path of the speculative decoder would leave the reference's.
    """

    def __init__(self, table, pos_table):
        self.table, self.pos_table = table, pos_table
        self.cache = []
        self.forwards = 0
        self.discards = 0

    def logits(self):
        return self.table[self.cache[-1]] + self.pos_table[len(self.cache) % len(self.pos_table)]

    def step(self, tok):
        self.forwards += 1
        self.cache.append(tok)
        return self.logits()

    def feed(self, ids):
        self.forwards += 1
        rows = []
        for tok in ids:
            self.cache.append(tok)
            rows.append(self.logits())
        return torch.stack(rows)

    def discard(self, n):
        assert 0 < n <= len(self.cache)
        self.discards += 1
        del self.cache[len(self.cache) - n:]


def greedy_reference(model, first, budget, strip):
    out, logits = [], first
    while len(out) < budget:
        tok = int(torch.argmax(logits))
        out.append(tok)
        if tok in EOS:
            break
        logits = model.step(tok)
    text = decode_text(out)
    text = text.strip() if strip else text
    return {a.name: a for a in Action}.get(text, Action.STOP), out


@pytest.mark.parametrize('strip', [True, False])
def test_speculative_equals_token_by_token(strip):
    rng = random.Random(1)
    gen = torch.Generator().manual_seed(1)
    outcomes = {a: 0 for a in Action}
    saved = mismatches = 0
    for trial in range(3000):
        table = random_table(rng, gen)
        # position-dependent part: small, so both verified and mismatching rows occur
        pos_table = torch.randn(7, len(VOCAB), generator=gen) * rng.choice([0.0, 0.5, 2.0])
        first = torch.randn(len(VOCAB), generator=gen)
        first[VOCAB.index(rng.choice(['MOVE', 'TURN', 'STOP', 'MOVE_', ' ', 'ST']))] += 3
        budget = rng.choice([1, 2, 3, 24])
        want, out = greedy_reference(ToyModel(table, pos_table), first, budget, strip)
        old_model = ToyModel(table, pos_table)
        old = ConstrainedActionDecoder(decode_text, EOS, max_new_tokens=budget,
                                       strip=strip).decode(first, old_model.step)
        model = ToyModel(table, pos_table)
        dec = ConstrainedActionDecoder(decode_text, EOS, max_new_tokens=budget, strip=strip,
                                       action_token_ids=ACTION_IDS)
        got = dec.decode(first, feed=model.feed, discard=model.discard)
        assert got.action == want == old.action, (trial, out, got)
        assert got.token_ids == old.token_ids and got.text == old.text, (trial, out, got, old)
        assert got.accepted == old.accepted
        assert got.forward_passes == model.forwards <= old.forward_passes
        # the cache holds at least the fed greedy tokens, as token-by-token decoding left it
        assert model.cache[:len(old_model.cache)] == old_model.cache
        saved += old.forward_passes - got.forward_passes
        mismatches += model.discards
        outcomes[got.action] += 1
    assert all(n > 50 for n in outcomes.values()), outcomes
    assert saved > 100 and mismatches > 30, (saved, mismatches)


def test_speculative_forward_counts():
    eos = VOCAB.index('<im_end>')

    def run(path):
        """Greedy path ``path`` (tokens then EOS); returns (result, fed chunks)."""
        table = torch.full((len(VOCAB), len(VOCAB)), -10.0)
        for a, b in zip(path, path[1:]):
            table[a, b] = 5
        first = torch.full((len(VOCAB),), -10.0)
        first[path[0]] = 5
        chunks = []
        model = ToyModel(table, torch.zeros(1, len(VOCAB)))

        def feed(ids):
            chunks.append(list(ids))
            return model.feed(ids)

        dec = ConstrainedActionDecoder(decode_text, EOS, action_token_ids=ACTION_IDS)
        return dec.decode(first, feed=feed, discard=model.discard), chunks

    for word, passes in (('STOP', 1), ('MOVE_FORWARD', 1), ('TURN_LEFT', 1), ('TURN_RIGHT', 2)):
        res, chunks = run(ACTION_IDS[word] + [eos])
        assert res.action == Action[word] and res.accepted, word
        assert res.forward_passes == passes == len(chunks), (word, chunks)
    res, chunks = run([VOCAB.index('MOVE'), VOCAB.index('_FORWARD'), VOCAB.index('X')])
    assert res.action == Action.STOP and res.text == 'MOVE_FORWARDX' and len(chunks) == 1
    # non-canonical split: verified token by token
    res, chunks = run([VOCAB.index('MOVE_'), VOCAB.index('FORWARD'), eos])
    assert res.action == Action.MOVE_FORWARD and chunks == [[VOCAB.index('MOVE_')],
                                                            [VOCAB.index('FORWARD')]]
    with pytest.raises(ValueError):
        ConstrainedActionDecoder(decode_text, EOS).decode(torch.zeros(len(VOCAB)))
