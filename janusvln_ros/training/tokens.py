"""The trimmed vocabulary of navigators trained in the built-in world.

Kept: every token of the prompt template (parity prompts with one and with several images, the
streaming prefix and query), the chat and vision special tokens, the action words with the end
token, and every word the world's instruction generator can produce
(:func:`janusvln_ros.sim.instructions.instruction_vocabulary`) in the forms text puts it in.
Any other text is refused by the model with a clear error (see :mod:`janusvln_ros.model.vocab`).
"""

from __future__ import annotations

import logging
from typing import Iterable

from janusvln_ros.model.prompt import ACTION_NAMES, PromptBuilder
from janusvln_ros.model.vocab import build_kept_ids, TokenMap
from janusvln_ros.sim.instructions import instruction_vocabulary

logger = logging.getLogger(__name__)

#: Width of the full Qwen2 vocabulary (the LM head of Qwen2.5-VL small models).
FULL_VOCAB_SIZE = 151936
SPECIAL_TOKENS = ('<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|vision_start|>',
                  '<|vision_end|>', '<|image_pad|>')
#: Words an operator may plausibly add around the world's vocabulary (kept so that simple
#: rephrasings are accepted; anything else is refused, never mangled).
EXTRA_WORDS = ('please', 'then', 'and', 'the', 'a', 'to', 'go', 'walk', 'stop', 'turn', 'left',
               'right', 'forward', 'straight', 'ahead', 'room', 'next', 'near', 'by', 'at',
               'in', 'into', 'through', 'past', 'find', 'reach', 'head', 'move', 'door',
               'doorway', 'of', 'on', 'your', 'you', 'until', 'see', 'enter', 'exit', 'leave')


def navigator_token_map(tokenizer: object, template_path: str | None = None,
                        texts: Iterable[str] = ()) -> TokenMap:
    """The token map of a navigator for the default (or given) prompt template.

    Args:
        tokenizer: The real Qwen2 tokenizer.
        template_path: Prompt template (default ``config/prompt_default.yaml``).
        texts: Extra texts to keep verbatim (e.g. the instructions of a dataset).

    Returns:
        The :class:`TokenMap` (original ids sorted).
    """
    prompt = PromptBuilder(tokenizer, template_path)
    words = list(instruction_vocabulary()) + list(EXTRA_WORDS)
    rendered = [prompt.parity_text(' '.join(words[:8]), n) for n in (1, 2)]
    t = prompt.template
    rendered.append(prompt._render(prompt._text(
        prompt._fill(t['streaming_prefix'], 'x') + prompt._fill(t['streaming_query'], 'x'))))
    answers = [name for name in ACTION_NAMES] + [name + '<|im_end|>' for name in ACTION_NAMES]
    kept = build_kept_ids(tokenizer, [*rendered, *answers, *texts], words=words,
                          special_tokens=SPECIAL_TOKENS)
    logger.info('navigator vocabulary: %d tokens kept of %d', len(kept), FULL_VOCAB_SIZE)
    return TokenMap(kept, FULL_VOCAB_SIZE)
