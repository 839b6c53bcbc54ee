"""A trimmed token vocabulary: the explicit id map of small checkpoints.

The real Qwen2 tokenizer has 151,669 tokens; its embedding alone would dominate a small model.
A small checkpoint may therefore keep only the tokens its prompts and instructions use. The
engine, the prompt builder and the decoder keep working in ORIGINAL token ids (the tokenizer is
unchanged); only the network translates:

* :meth:`TokenMap.compact` maps original ids to rows of the trimmed embedding and refuses any id
  outside the map with a :class:`VocabularyError` naming the offending tokens;
* :meth:`TokenMap.expand_logits` writes the trimmed LM-head logits back into a full-width
  ``(..., full_vocab_size)`` tensor (tokens outside the map get the dtype's lowest value), so
  argmax, the constrained decoder and first-token comparisons see original ids.

On disk the map is part of ``config.json``: ``"token_map": {"full_vocab_size": N, "kept_ids":
[...]}``; ``vocab_size`` is then ``len(kept_ids)`` and row ``i`` of the embedding and of the LM
head belongs to original id ``kept_ids[i]``. Released checkpoints have no ``token_map``.
"""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

import torch

logger = logging.getLogger(__name__)


class VocabularyError(ValueError):
    """Text uses tokens outside a checkpoint's trimmed vocabulary.

    Attributes:
        unknown_ids: The original token ids that are not in the map (sorted, unique).
    """

    def __init__(self, message: str, unknown_ids: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.unknown_ids = list(unknown_ids)


class TokenMap:
    """Original token id <-> row of a trimmed embedding.

    Args:
        kept_ids: Original ids kept, in row order (unique, each in ``[0, full_vocab_size)``).
        full_vocab_size: Width of the full vocabulary (logits are expanded to it).

    Raises:
        ValueError: On duplicate or out-of-range ids.
    """

    def __init__(self, kept_ids: Sequence[int], full_vocab_size: int) -> None:
        kept = [int(i) for i in kept_ids]
        if not kept:
            raise ValueError('token_map: kept_ids is empty')
        if len(set(kept)) != len(kept):
            raise ValueError('token_map: kept_ids has duplicates')
        if min(kept) < 0 or max(kept) >= full_vocab_size:
            raise ValueError(f'token_map: ids must lie in [0, {full_vocab_size}), got '
                             f'{min(kept)}..{max(kept)}')
        self.kept_ids = tuple(kept)
        self.full_vocab_size = int(full_vocab_size)
        self._to_original = torch.tensor(kept, dtype=torch.long)
        to_compact = torch.full((full_vocab_size,), -1, dtype=torch.long)
        to_compact[self._to_original] = torch.arange(len(kept))
        self._to_compact = to_compact
        self._by_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.kept_ids)

    def __contains__(self, token_id: object) -> bool:
        return isinstance(token_id, int) and 0 <= token_id < self.full_vocab_size \
            and int(self._to_compact[token_id]) >= 0

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        tables = self._by_device.get(device)
        if tables is None:
            tables = (self._to_compact.to(device), self._to_original.to(device))
            self._by_device[device] = tables
        return tables

    def unknown(self, ids: Iterable[int] | torch.Tensor) -> list[int]:
        """Sorted unique ids of ``ids`` that are not in the map (host-side check)."""
        flat = ids.reshape(-1).tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = {int(i) for i in flat if not (0 <= int(i) < self.full_vocab_size)
               or int(self._to_compact[int(i)]) < 0}
        return sorted(bad)

    def compact(self, ids: torch.Tensor) -> torch.Tensor:
        """Original ids -> trimmed rows, same shape and device.

        Raises:
            VocabularyError: Some id is outside the map (checked on the host for CPU inputs;
                on other devices one reduction is synchronised).
        """
        to_compact, _ = self._tables(ids.device)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.full_vocab_size):
            raise VocabularyError(f'token ids outside [0, {self.full_vocab_size})',
                                  self.unknown(ids.cpu()))
        out = to_compact[ids]
        if ids.numel() and bool((out < 0).any()):
            unknown = self.unknown(ids.cpu())
            raise VocabularyError(f"{len(unknown)} token id(s) outside this checkpoint's "
                                  f'vocabulary: {unknown[:10]}', unknown)
        return out

    def original(self, rows: torch.Tensor) -> torch.Tensor:
        """Trimmed rows -> original ids."""
        _, to_original = self._tables(rows.device)
        return to_original[rows]

    def expand_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """``(..., len(self))`` -> ``(..., full_vocab_size)``; absent tokens get the minimum."""
        _, to_original = self._tables(logits.device)
        full = logits.new_full((*logits.shape[:-1], self.full_vocab_size),
                               torch.finfo(logits.dtype).min)
        full[..., to_original] = logits
        return full

    def to_json(self) -> dict[str, object]:
        """The ``config.json`` entry."""
        return {'full_vocab_size': self.full_vocab_size, 'kept_ids': list(self.kept_ids)}


def build_kept_ids(tokenizer: object, texts: Iterable[str], words: Iterable[str] = (),
                   special_tokens: Iterable[str] = ()) -> list[int]:
    """The sorted original ids a trimmed vocabulary must keep.

    Args:
        tokenizer: The real tokenizer (``encode`` and ``convert_tokens_to_ids``).
        texts: Whole texts to keep exactly as tokenised (prompts, generated instructions).
        words: Words to keep in the variants text puts them in: alone, after a space,
            capitalised, lower-case, and followed by ``.`` or ``,``.
        special_tokens: Token strings kept as they are (chat and vision tokens).

    Returns:
        Sorted unique ids.
    """
    kept: set[int] = set()
    for text in texts:
        kept.update(int(i) for i in tokenizer.encode(text, add_special_tokens=False))
    for word in words:
        for form in {word, word.lower(), word[:1].upper() + word[1:]}:
            for variant in (form, ' ' + form, form + '.', ' ' + form + '.', form + ',',
                            ' ' + form + ','):
                kept.update(int(i) for i in tokenizer.encode(variant, add_special_tokens=False))
    for token in special_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == getattr(tokenizer, 'unk_token_id', None):
            raise ValueError(f'the tokenizer has no {token!r} token')
        kept.add(int(token_id))
    return sorted(kept)
