"""Forced decoding for benchmarks: make an engine's decoder follow a trained model's answer.

A model with random (or barely trained) weights answers junk, on which the engines' constrained
decoder stops after the first token: timing that path would flatter the decode stage.
:class:`ForcedDecoder` wraps an engine's decoder so that the logits it reads get a large bonus
on the next token of a chosen answer (``MOVE_FORWARD<|im_end|>`` by default); the decoder then
runs exactly the forwards and host syncs a real answer costs. The first-token logits the engine
keeps (``engine.last_logits``) are read before the bonus, so they stay the model's own.
:class:`ForwardCounter` counts LLM forwards.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from janusvln_ros.model.janusvln import JanusVLNForNavigation


class ForwardCounter:
    """Counts ``model.llm_forward`` calls (instance attribute shadowing the method)."""

    def __init__(self, model: JanusVLNForNavigation) -> None:
        self.count = 0
        self._inner = model.llm_forward

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return self._inner(*args, **kwargs)

        model.llm_forward = counted  # type: ignore[method-assign]


class ForcedDecoder:
    """Wraps the engine's decoder so that greedy decoding follows ``forced`` token ids.

    The wrapped decoder does all its own work (argmax, text checks, forwards, speculative
    verification of the rest of a word); only the logits it reads get ``+bonus`` at the forced
    token of their position: row ``j`` of a ``feed(ids)`` call predicts answer token
    ``cached + j + 1``, where ``cached`` counts the answer tokens in the cache (fed minus
    discarded). ``enabled`` switches it per step.
    """

    def __init__(self, inner: Any, forced: list[int], bonus: float = 1e4) -> None:
        self.inner = inner
        self.forced = list(forced)
        self.bonus = bonus
        self.enabled = True

    def _force(self, logits: torch.Tensor, index: int) -> torch.Tensor:
        out = logits.clone()
        rows = out.view(-1, out.shape[-1])
        for j in range(rows.shape[0]):
            k = index + j - rows.shape[0] + 1  # the answer index the row predicts
            if 0 <= k < len(self.forced):
                rows[j, self.forced[k]] += self.bonus
        return out

    def decode(self, first_logits: torch.Tensor,
               step: Callable[[int], torch.Tensor] | None = None,
               feed: Callable[[Any], torch.Tensor] | None = None,
               discard: Callable[[int], None] | None = None) -> Any:
        """Same as the wrapped decoder's ``decode``, on forced logits when enabled."""
        if not self.enabled:
            return self.inner.decode(first_logits, step=step, feed=feed, discard=discard)
        state = {'cached': 0}

        def forced_step(token: int) -> torch.Tensor:
            assert step is not None
            state['cached'] += 1
            return self._force(step(token).reshape(1, -1), state['cached'])

        def forced_feed(ids: Any) -> torch.Tensor:
            assert feed is not None
            state['cached'] += len(ids)
            return self._force(feed(ids), state['cached'])

        def forced_discard(n: int) -> None:
            assert discard is not None
            state['cached'] -= n
            discard(n)

        first = self._force(first_logits.reshape(-1, first_logits.shape[-1])[-1:], 0)
        return self.inner.decode(first, step=forced_step if step is not None else None,
                                 feed=forced_feed if feed is not None else None,
                                 discard=forced_discard if discard is not None else None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def forced_ids(engine: Any, action: str = 'MOVE_FORWARD') -> list[int]:
    """The tokens of ``action`` (an action word) then ``<|im_end|>``."""
    words = engine.prompt.action_token_ids()
    return list(words[action]) + [engine.prompt.eos_token_ids[0]]
