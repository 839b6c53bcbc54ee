"""Navigation prompts: the template file, the chat-template rendering, image slots, actions.

The wording lives in a YAML template file, by default ``config/prompt_default.yaml`` (the
project's own text; the upstream JanusVLN prompt is not reproduced). Its keys:

``system``
    The system turn.
``before_images``, ``history_label``, ``current_label``, ``after_images``
    The parity prompt's user turn: ``before_images``, then (only when there are history images)
    ``history_label`` and the history images, then ``current_label`` and the current image, then
    ``after_images``.
``streaming_prefix``, ``streaming_query``
    The streaming prompt's user turn: the prefix, the frames one after another, the query.
``actions``
    The four action names ``STOP``, ``MOVE_FORWARD``, ``TURN_LEFT``, ``TURN_RIGHT`` in the order
    they are listed to the model.

``{instruction}`` and ``{actions}`` (the action names, one per line) are the only placeholders.

**Running a checkpoint with the prompt it was trained with.** Copy the default file, put the
checkpoint's exact strings into it (for a checkpoint trained with history/current labels fill in
``history_label`` and ``current_label``; for one evaluated with plain image lists leave them
empty), and set the engine parameter ``prompt_template`` (``EngineConfig.prompt_template``; the
node's ROS parameters are declared from ``EngineConfig``) to its path, e.g.
``EngineConfig(model_path='/ckpt', prompt_template='/ckpt/prompt.yaml')``.
The chat framing (``<|im_start|>`` turns, ``<|vision_start|>`` image slots) comes from the
checkpoint's own chat template, so only the words need to be supplied.

Each image occupies ``<|vision_start|>`` + ``n`` x ``<|image_pad|>`` + ``<|vision_end|>``; ``n`` is
the image's merged token count (391 for a 640x480 camera at width 644).
"""

from __future__ import annotations

import logging
import os
import pathlib
import sys
from typing import Any, Sequence

import torch
from transformers import PreTrainedTokenizerBase
import yaml

logger = logging.getLogger(__name__)

ACTION_NAMES = ('STOP', 'MOVE_FORWARD', 'TURN_LEFT', 'TURN_RIGHT')
DEFAULT_TEMPLATE_NAME = 'prompt_default.yaml'
IMAGE_PAD = '<|image_pad|>'
VISION_START = '<|vision_start|>'
VISION_END = '<|vision_end|>'
_TEXT_KEYS = ('system', 'before_images', 'history_label', 'current_label', 'after_images',
              'streaming_prefix', 'streaming_query')
_EOS_TOKENS = ('<|im_end|>', '<|endoftext|>')


class PromptError(ValueError):
    """A prompt template is missing, malformed, or does not fit the tokenizer."""


def default_template_path() -> pathlib.Path:
    """Locate ``prompt_default.yaml``: the source tree, then installed ``share`` folders.

    Raises:
        PromptError: If no copy is found.
    """
    candidates = [pathlib.Path(__file__).resolve().parents[2] / 'config' / DEFAULT_TEMPLATE_NAME]
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    candidates += [pathlib.Path(p) / 'share' / 'janusvln_ros' / 'config' / DEFAULT_TEMPLATE_NAME
                   for p in prefixes]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise PromptError(f'default prompt template {DEFAULT_TEMPLATE_NAME} not found in '
                      f'{[str(c) for c in candidates]}')


def load_template(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read and validate a prompt template file.

    Args:
        path: YAML file; ``None`` or ``''`` selects the installed default.

    Returns:
        The template: every text key as a string, ``actions`` as a tuple of the four names.

    Raises:
        PromptError: On a missing file, bad YAML, a missing or non-string key, or a wrong
            action list.
    """
    file = pathlib.Path(path) if path else default_template_path()
    if not file.is_file():
        raise PromptError(f'prompt template not found: {file}')
    try:
        data = yaml.safe_load(file.read_text(encoding='utf-8'))
    except yaml.YAMLError as exc:
        raise PromptError(f'prompt template {file} is not valid YAML: {exc}') from exc
    if not isinstance(data, dict):
        raise PromptError(f'prompt template {file}: expected a mapping, got {type(data).__name__}')
    template: dict[str, Any] = {'name': str(data.get('name', file.stem))}
    for key in _TEXT_KEYS:
        value = data.get(key, '')
        if value is None:
            value = ''
        if not isinstance(value, str):
            raise PromptError(f'prompt template {file}: {key} must be a string, got {value!r}')
        template[key] = value
    if not template['system'] or '{instruction}' not in (
            template['before_images'] + template['after_images']):
        raise PromptError(f'prompt template {file}: needs a system text and {{instruction}} in '
                          'before_images or after_images')
    if '{instruction}' not in template['streaming_prefix'] + template['streaming_query']:
        raise PromptError(f'prompt template {file}: needs {{instruction}} in streaming_prefix or '
                          'streaming_query')
    actions = data.get('actions', list(ACTION_NAMES))
    if not isinstance(actions, list) or sorted(map(str, actions)) != sorted(ACTION_NAMES):
        raise PromptError(f'prompt template {file}: actions must list exactly {ACTION_NAMES}, '
                          f'got {actions!r}')
    template['actions'] = tuple(str(a) for a in actions)
    return template


def parse_action_name(text: str) -> str:
    """Exact-match parse of the model's answer; anything else is ``'STOP'``.

    Only surrounding whitespace is ignored (spaces or a newline around ``MOVE_FORWARD`` are
    fine; ``'move_forward'`` or ``'MOVE_FORWARD.'`` are not), as the released evaluation's exact
    match does.

    Args:
        text: The decoded answer (special tokens removed).

    Returns:
        One of :data:`ACTION_NAMES`.
    """
    stripped = text.strip()
    return stripped if stripped in ACTION_NAMES else 'STOP'


class PromptBuilder:
    """Build token ids of navigation prompts with the tokenizer's chat template.

    Args:
        tokenizer: A Qwen2-family tokenizer with a chat template (see ``model/tokenizer.py``).
        template_path: Prompt template YAML; ``None``/``''`` = ``config/prompt_default.yaml``.

    Raises:
        PromptError: If the template is invalid or the tokenizer lacks the vision tokens.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase,
                 template_path: str | os.PathLike[str] | None = None) -> None:
        self.tokenizer = tokenizer
        self.template = load_template(template_path)
        ids = {}
        for token in (IMAGE_PAD, VISION_START, VISION_END):
            token_id = tokenizer.convert_tokens_to_ids(token)
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise PromptError(f'the tokenizer has no {token} token')
            ids[token] = int(token_id)
        self.image_token_id = ids[IMAGE_PAD]
        self.vision_start_token_id = ids[VISION_START]
        self.vision_end_token_id = ids[VISION_END]
        self._streaming_query: list[int] | None = None

    # ----------------------------------------------------------------- rendering helpers
    def _fill(self, text: str, instruction: str) -> str:
        actions = '\n'.join(self.template['actions'])
        return text.replace('{instruction}', instruction).replace('{actions}', actions)

    def _render(self, user_content: list[dict[str, str]]) -> str:
        messages = [{'role': 'system', 'content': self.template['system']},
                    {'role': 'user', 'content': user_content}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    @staticmethod
    def _text(text: str) -> list[dict[str, str]]:
        return [{'type': 'text', 'text': text}] if text else []

    # ----------------------------------------------------------------- parity prompt
    def parity_messages(self, instruction: str, num_images: int) -> list[dict[str, str]]:
        """The user-turn content list of a parity prompt with ``num_images`` images.

        The last image is the current frame; the ones before it are history in time order.
        """
        if num_images < 1:
            raise PromptError(f'a parity prompt needs at least one image, got {num_images}')
        t = self.template
        instruction = instruction.strip()
        content = self._text(self._fill(t['before_images'], instruction))
        if num_images > 1:
            content += self._text(t['history_label'])
            content += [{'type': 'image'}] * (num_images - 1)
        content += self._text(t['current_label'])
        content += [{'type': 'image'}]
        content += self._text(self._fill(t['after_images'], instruction))
        return content

    def parity_text(self, instruction: str, num_images: int) -> str:
        """The rendered parity prompt, one ``<|image_pad|>`` per image (before expansion)."""
        return self._render(self.parity_messages(instruction, num_images))

    def parity_ids(self, instruction: str, image_token_counts: Sequence[int]) -> torch.Tensor:
        """Token ids of the full parity prompt.

        Args:
            instruction: The route instruction.
            image_token_counts: Merged LLM tokens of each image, history first, current last.

        Returns:
            ``(L,)`` int64: system turn, user turn with each image as ``<|vision_start|>`` +
            ``n_i`` x ``<|image_pad|>`` + ``<|vision_end|>``, then the assistant turn start.
        """
        counts = [int(n) for n in image_token_counts]
        if any(n < 1 for n in counts):
            raise PromptError(f'image token counts must be positive, got {counts}')
        ids = self._encode(self.parity_text(instruction, len(counts)))
        return torch.tensor(self._expand_pads(ids, counts), dtype=torch.long)

    def _expand_pads(self, ids: list[int], counts: list[int]) -> list[int]:
        pads = [i for i, t in enumerate(ids) if t == self.image_token_id]
        if len(pads) != len(counts):
            raise PromptError(f'the chat template produced {len(pads)} image slots for '
                              f'{len(counts)} images')
        out: list[int] = []
        start = 0
        for pos, n in zip(pads, counts):
            out += ids[start:pos] + [self.image_token_id] * n
            start = pos + 1
        return out + ids[start:]

    # ----------------------------------------------------------------- streaming pieces
    def _streaming_split(self, instruction: str) -> tuple[str, str]:
        t = self.template
        content = (self._text(self._fill(t['streaming_prefix'], instruction))
                   + [{'type': 'image'}]
                   + self._text(self._fill(t['streaming_query'], instruction)))
        text = self._render(content)
        head, sep, _ = text.partition(VISION_START)
        _, sep2, tail = text.rpartition(VISION_END)
        if not sep or not sep2:
            raise PromptError('the chat template does not frame images with '
                              f'{VISION_START}...{VISION_END}')
        return head, tail

    def prefix_ids(self, instruction: str) -> torch.Tensor:
        """Streaming prompt start: system turn, user-turn start, the instruction text. ``(L,)``."""
        head, _ = self._streaming_split(instruction.strip())
        return torch.tensor(self._encode(head), dtype=torch.long)

    def frame_ids(self, n_tokens: int) -> torch.Tensor:
        """One image chunk: ``<|vision_start|>`` + ``n_tokens`` pads + ``<|vision_end|>``."""
        if n_tokens < 1:
            raise PromptError(f'n_tokens must be positive, got {n_tokens}')
        ids = [self.vision_start_token_id] + [self.image_token_id] * n_tokens
        return torch.tensor(ids + [self.vision_end_token_id], dtype=torch.long)

    def query_ids(self) -> torch.Tensor:
        """Streaming prompt end: text after the frames, end of user turn, assistant start."""
        if self._streaming_query is None:
            if '{instruction}' in self.template['streaming_query']:
                raise PromptError('streaming_query must not contain {instruction}: the query is '
                                  'shared by every step')
            _, tail = self._streaming_split('x')
            self._streaming_query = self._encode(tail)
        return torch.tensor(self._streaming_query, dtype=torch.long)

    # ----------------------------------------------------------------- answers
    def action_token_ids(self) -> dict[str, list[int]]:
        """Token ids of each action name (as the model should emit it, before the end token)."""
        return {name: self._encode(name) for name in ACTION_NAMES}

    @property
    def eos_token_ids(self) -> list[int]:
        """Ids that end the answer: ``<|im_end|>``, ``<|endoftext|>`` and the tokenizer's eos."""
        ids = []
        for token in _EOS_TOKENS:
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if token_id is not None and token_id != self.tokenizer.unk_token_id:
                ids.append(int(token_id))
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(int(self.tokenizer.eos_token_id))
        return ids

    def decode(self, token_ids: Sequence[int]) -> str:
        """Decode generated ids to text without special tokens."""
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True)
