"""Constrained greedy decoding over the four action words, equal to "generate, then parse".

The released step loop generates greedily (up to ``max_new_tokens``, stopping at an EOS token),
decodes the text and maps an exact match of one of the action words to its action; anything
else is STOP. :class:`ConstrainedActionDecoder` returns the same action while decoding only as
many tokens as the answer needs: it follows the greedy argmax token while the decoded text can
still become an action word, and stops at the first token that rules every action word out
(the answer is then STOP whatever the reference would generate next). An action word that is
complete is accepted only if the next greedy token is an EOS (or if the budget ends there), as
in the reference. With single-word answers this costs at most ``tokens(word) + 1`` forward
passes, i.e. <= 4 for the Qwen tokenizer, against up to 24 for free-running generation.

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
    """

    def __init__(self, decode_text: Callable[[Sequence[int]], str], eos_token_ids: Iterable[int],
                 max_new_tokens: int = 24, strip: bool = True,
                 actions: Mapping[str, Action] | None = None) -> None:
        self._decode_text = decode_text
        self._eos = frozenset(int(i) for i in eos_token_ids)
        if not self._eos:
            raise ValueError('eos_token_ids must not be empty')
        if max_new_tokens < 1:
            raise ValueError(f'max_new_tokens must be >= 1, got {max_new_tokens}')
        self.max_new_tokens = max_new_tokens
        self._strip = strip
        self._actions = dict(ACTION_WORDS if actions is None else actions)

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

    def decode(self, first_logits: torch.Tensor,
               step: Callable[[int], torch.Tensor]) -> DecodeResult:
        """Decode one answer.

        Args:
            first_logits: ``(vocab,)`` (or ``(..., vocab)``, last row used) logits of the first
                generated token, from the prefill.
            step: Feeds one token id to the model (appending it to the cache) and returns the
                next token's ``(vocab,)`` logits.

        Returns:
            The decode result; one host synchronisation per greedy token.
        """
        logits = first_logits.reshape(-1, first_logits.shape[-1])[-1]
        tokens: list[int] = []
        passes = 0
        text = ''
        while True:
            token = int(torch.argmax(logits))
            if token in self._eos:
                tokens.append(token)
                action = self.parse(text)
                return DecodeResult(action if action is not None else Action.STOP, text,
                                    tuple(tokens), passes, action is not None)
            tokens.append(token)
            text = self._decode_text(tokens)
            if len(tokens) >= self.max_new_tokens:
                action = self.parse(text)
                return DecodeResult(action if action is not None else Action.STOP, text,
                                    tuple(tokens), passes, action is not None)
            if not self.viable(text):
                return DecodeResult(Action.STOP, text, tuple(tokens), passes, False)
            logits = step(token).reshape(-1, logits.shape[-1])[-1]
            passes += 1
