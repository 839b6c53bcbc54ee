"""Constrained greedy decoding over the four action words, equal to "generate, then parse".

The released step loop generates greedily (up to ``max_new_tokens``, stopping at an EOS token),
decodes the text and maps an exact match of one of the action words to its action; anything
else is STOP. :class:`ConstrainedActionDecoder` returns the same action while decoding only as
many tokens as the answer needs: it follows the greedy argmax token while the decoded text can
still become an action word, and stops at the first token that rules every action word out
(the answer is then STOP whatever the reference would generate next). An action word that is
complete is accepted only if the next greedy token is an EOS (or if the budget ends there), as
in the reference. Token by token, a single-word answer costs ``tokens(word)`` forward passes
after the prefill (the last one checks the EOS), against up to 24 for free-running generation.

**Speculative verification** (``decode(..., feed=, discard=)``): once the greedy tokens are
the start of an action word's canonical tokenisation (``MOVE`` of ``MOVE`` + ``_FORWARD``),
the pending token and the rest of the word are fed in ONE forward pass whose rows give the
greedy token after each of them. Every row whose argmax equals the next fed token is a
verified greedy step; the row after the last one gives the EOS check. At the first mismatch
the argmax of that row *is* the greedy token that token-by-token decoding would have chosen
there: the fed tokens after it are discarded from the cache and decoding goes on from it. The
result is therefore the same greedy tokens and the same action, in fewer passes: with the Qwen
tokenizer (``STOP``, ``MOVE``+``_FORWARD``, ``TURN``+``_LEFT``/``_RIGHT``) a trained model's
answer costs 1 decode forward pass for ``STOP``, ``MOVE_FORWARD`` and ``TURN_LEFT``, and 2 for
``TURN_RIGHT`` (``TURN`` is ambiguous: the first word in order, ``TURN_LEFT``, is tried; a
miss costs exactly the pass that token-by-token decoding would have spent on ``TURN``).

The comparison is made on *text*, not on token ids, so that a non-canonical tokenisation of an
action word (e.g. ``MOVE_`` + ``FORWARD``), or special tokens that decode to nothing, are
treated exactly as the reference's text-level parse treats them.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Iterable, Mapping, Sequence

import torch

from janusvln_ros.core.types import Action

logger = logging.getLogger(__name__)

ACTION_WORDS: dict[str, Action] = {a.name: a for a in Action}


@dataclasses.dataclass(frozen=True)
class DecodeResult:
    """The outcome of one constrained decode.

    Attributes:
        action: The parsed action (STOP when the greedy text is not an action word).
        text: Decoded text of the greedy tokens that were followed (the reference's full
            output when ``accepted``; a prefix of it otherwise).
        token_ids: The greedy tokens that were chosen, an EOS included if one was reached.
        forward_passes: Decode forward passes run after the prefill.
        accepted: True when the text is an action word, ended by EOS or by the budget.
    """

    action: Action
    text: str
    token_ids: tuple[int, ...]
    forward_passes: int
    accepted: bool


class ConstrainedActionDecoder:
    """Greedy decoding restricted to the action words (see the module docstring).

    Args:
        decode_text: Token ids -> text, exactly as the reference decodes its output
            (e.g. ``lambda ids: tokenizer.decode(ids, skip_special_tokens=True)``).
        eos_token_ids: Ids that end generation.
        max_new_tokens: The reference's generation budget.
        strip: Whether the reference strips whitespace before matching.
        actions: Action word -> action (default: the four VLN-CE words).
        action_token_ids: Action word -> its canonical token ids (e.g.
            ``PromptBuilder.action_token_ids()``), to verify the rest of a started word in one
            forward pass (``decode(..., feed=, discard=)``); None: no speculation.
    """

    def __init__(self, decode_text: Callable[[Sequence[int]], str], eos_token_ids: Iterable[int],
                 max_new_tokens: int = 24, strip: bool = True,
                 actions: Mapping[str, Action] | None = None,
                 action_token_ids: Mapping[str, Sequence[int]] | None = None) -> None:
        self._decode_text = decode_text
        self._eos = frozenset(int(i) for i in eos_token_ids)
        if not self._eos:
            raise ValueError('eos_token_ids must not be empty')
        if max_new_tokens < 1:
            raise ValueError(f'max_new_tokens must be >= 1, got {max_new_tokens}')
        self.max_new_tokens = max_new_tokens
        self._strip = strip
        self._actions = dict(ACTION_WORDS if actions is None else actions)
        self._action_ids = {word: tuple(int(i) for i in ids)
                            for word, ids in (action_token_ids or {}).items()
                            if word in self._actions and ids}

    def parse(self, text: str) -> Action | None:
        """The action whose word the reference would match in ``text`` (None: fallback)."""
        return self._actions.get(text.strip() if self._strip else text)

    def viable(self, text: str) -> bool:
        """Whether some continuation of ``text`` can still parse as an action word."""
        s = text.lstrip() if self._strip else text
        for word in self._actions:
            if word.startswith(s):
                return True
            if self._strip and s.startswith(word) and not s[len(word):].strip():
                return True
        return False

    def speculation(self, tokens: Sequence[int]) -> list[int]:
        """The rest of an action word's canonical token ids that begin with ``tokens``.

        Returns:
            The tokens that would complete the first action word (in ``action_token_ids``
            order) whose ids start with ``tokens``; ``[]`` when none does (or none was given).
        """
        n = len(tokens)
        for ids in self._action_ids.values():
            if len(ids) > n and list(ids[:n]) == list(tokens):
                return list(ids[n:])
        return []

    def _finish(self, tokens: list[int], text: str, passes: int) -> DecodeResult | None:
        """The result once the last greedy token is known, or None to keep decoding."""
        if tokens[-1] in self._eos:
            action = self.parse(text)
            return DecodeResult(action if action is not None else Action.STOP, text,
                                tuple(tokens), passes, action is not None)
        if len(tokens) >= self.max_new_tokens:
            action = self.parse(text)
            return DecodeResult(action if action is not None else Action.STOP, text,
                                tuple(tokens), passes, action is not None)
        if not self.viable(text):
            return DecodeResult(Action.STOP, text, tuple(tokens), passes, False)
        return None

    def decode(self, first_logits: torch.Tensor,
               step: Callable[[int], torch.Tensor] | None = None,
               feed: Callable[[Sequence[int]], torch.Tensor] | None = None,
               discard: Callable[[int], None] | None = None) -> DecodeResult:
        """Decode one answer.

        Args:
            first_logits: ``(vocab,)`` (or ``(..., vocab)``, last row used) logits of the first
                generated token, from the prefill.
            step: Feeds one token id to the model (appending it to the cache) and returns the
                next token's ``(vocab,)`` logits. Used when ``feed`` is None.
            feed: Feeds several token ids in ONE forward pass (appending them to the cache) and
                returns ``(len(ids), vocab)`` logits, row ``j`` predicting the token after
                ``ids[j]``. With ``feed`` (and ``discard``), the rest of a started action word
                is verified speculatively (module docstring).
            discard: Removes the last ``n`` fed tokens from the cache (after a mismatch).

        Returns:
            The decode result (``forward_passes`` = calls of ``step``/``feed``); one host
            synchronisation per forward pass plus one for the first token. Tokens fed
            speculatively after the returned ones may be left in the cache: the caller
            drops the answer from the cache anyway.
        """
        if step is None and feed is None:
            raise ValueError('decode needs step or feed')
        if feed is not None and discard is None:
            raise ValueError('feed needs discard')
        vocab = first_logits.shape[-1]
        tokens = [int(torch.argmax(first_logits.reshape(-1, vocab)[-1]))]
        passes = 0
        text = '' if tokens[0] in self._eos else self._decode_text(tokens)
        done = self._finish(tokens, text, passes)
        while done is None:
            # tokens[-1] is the greedy token still to be fed
            spec: list[int] = []
            if feed is not None:
                spec = self.speculation(tokens)[:max(0, self.max_new_tokens - len(tokens) - 1)]
                rows = feed([tokens[-1]] + spec).reshape(-1, vocab)
            else:
                rows = step(tokens[-1]).reshape(-1, vocab)[-1:]
            passes += 1
            greedy = rows[:len(spec) + 1].argmax(-1).tolist()  # one host sync per forward
            for j, token in enumerate(greedy):
                tokens.append(int(token))
                if token not in self._eos:  # the EOS itself is not part of the parsed text
                    text = self._decode_text(tokens)
                done = self._finish(tokens, text, passes)
                if done is not None:
                    break
                if j < len(spec) and token == spec[j]:
                    continue  # verified: the next row follows this token
                if j < len(spec):
                    assert discard is not None
                    discard(len(spec) - j)  # fed tokens after the mismatch are not greedy
                break
        return done
