"""Configuration of the JanusVLN network and its presets ('tiny' for tests, 'real' for 7B).

:class:`JanusVLNConfig` holds the Qwen2.5-VL text and vision settings, the special token ids, the
VGGT aggregator settings and the JanusVLN fusion settings. It reads and writes the released
``config.json`` layout: Qwen fields as transformers 4.50 wrote them (text fields at the top level,
``vision_config`` nested, ``rope_scaling`` with ``mrope_section``), ``model_type: qwen2_5_vl``,
``architectures: ["Qwen2_5_VLForConditionalGenerationForJanusVLN"]``, ``lam``,
``vggt_merger_hidden_dim``, ``reference_frame``. Two optional keys are this project's additions:
``vggt_config`` (absent in released files, which then mean VGGT-1B) and ``image_width`` (the
preprocessing width, 644 when absent). Configs saved by transformers 5.x (``text_config`` nested)
are read too.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any, Mapping

from transformers import Qwen2_5_VLConfig

from janusvln_ros.model.preprocess import TARGET_WIDTH
from janusvln_ros.model.vggt import VGGTConfig
from janusvln_ros.model.vocab import TokenMap

logger = logging.getLogger(__name__)

MODEL_TYPE = 'qwen2_5_vl'
ARCHITECTURE = 'Qwen2_5_VLForConditionalGenerationForJanusVLN'
PRESETS = ('tiny', 'small', 'real')

# Text fields written at the top level of config.json (transformers 4.50 layout).
TEXT_KEYS = ('vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
             'num_attention_heads', 'num_key_value_heads', 'hidden_act',
             'max_position_embeddings', 'initializer_range', 'rms_norm_eps', 'use_cache',
             'use_sliding_window', 'sliding_window', 'max_window_layers', 'attention_dropout',
             'bos_token_id', 'eos_token_id')
VISION_KEYS = ('depth', 'hidden_size', 'intermediate_size', 'num_heads', 'hidden_act',
               'in_channels', 'patch_size', 'spatial_merge_size', 'temporal_patch_size',
               'window_size', 'out_hidden_size', 'fullatt_block_indexes', 'tokens_per_second',
               'initializer_range')
TOKEN_KEYS = ('image_token_id', 'video_token_id', 'vision_start_token_id', 'vision_end_token_id')


class CheckpointError(ValueError):
    """A checkpoint directory or its config is unusable (the message says what and where)."""


@dataclasses.dataclass(frozen=True)
class JanusVLNConfig:
    """Everything needed to build :class:`~janusvln_ros.model.janusvln.JanusVLNForNavigation`.

    Attributes:
        text: Qwen2.5-VL text (LLM) settings: the :data:`TEXT_KEYS` plus ``rope_theta`` and
            ``mrope_section`` (whose sum must be ``head_dim // 2``).
        vision: Qwen2.5-VL vision tower settings (:data:`VISION_KEYS`).
        vggt: VGGT aggregator settings (``VGGTConfig.to_dict()``).
        image_token_id: ``<|image_pad|>``.
        video_token_id: ``<|video_pad|>``.
        vision_start_token_id: ``<|vision_start|>``.
        vision_end_token_id: ``<|vision_end|>``.
        tie_word_embeddings: Whether ``lm_head`` shares the embedding matrix (False for 7B).
        lam: Weight of the 3-D features added to the 2-D image tokens (0.2).
        vggt_merger_hidden_dim: Hidden width of the fusion MLP (4096).
        output_layer: Aggregator output fused into the LLM, as a non-negative index
            (``depth - 2``: 22 for VGGT-1B).
        reference_frame: Which frame VGGT treats as the reference (only ``'first'``).
        image_width: Preprocessing width (644 for released checkpoints; tiny models use less).
        token_map: Optional trimmed vocabulary (:class:`~janusvln_ros.model.vocab.TokenMap`):
            ``text['vocab_size']`` rows, each an original token id; ``None`` = full vocabulary.
    """

    text: Mapping[str, Any]
    vision: Mapping[str, Any]
    vggt: Mapping[str, Any]
    image_token_id: int = 151655
    video_token_id: int = 151656
    vision_start_token_id: int = 151652
    vision_end_token_id: int = 151653
    tie_word_embeddings: bool = False
    lam: float = 0.2
    vggt_merger_hidden_dim: int = 4096
    output_layer: int = 22
    reference_frame: str = 'first'
    image_width: int = TARGET_WIDTH
    token_map: TokenMap | None = None

    def __post_init__(self) -> None:
        """Validate; raise :class:`CheckpointError` naming the bad field."""
        vggt = self.vggt_config()
        if not 0 <= self.output_layer < vggt.depth:
            raise CheckpointError(f'output_layer: expected 0..{vggt.depth - 1}, '
                                  f'got {self.output_layer}')
        if self.reference_frame != 'first':
            raise CheckpointError(f"reference_frame: only 'first' is supported, got "
                                  f'{self.reference_frame!r}')
        if not isinstance(self.image_width, int) or self.image_width <= 0 \
                or self.image_width % 28:
            raise CheckpointError(f'image_width: expected a positive multiple of 28, got '
                                  f'{self.image_width!r}')
        if self.vision.get('out_hidden_size') != self.text.get('hidden_size'):
            raise CheckpointError('vision_config.out_hidden_size must equal hidden_size, got '
                                  f'{self.vision.get("out_hidden_size")} and '
                                  f'{self.text.get("hidden_size")}')
        heads = int(self.text['num_attention_heads'])
        head_dim = int(self.text['hidden_size']) // heads
        if sum(self.text['mrope_section']) != head_dim // 2:
            raise CheckpointError(f'mrope_section {list(self.text["mrope_section"])} must sum to '
                                  f'head_dim // 2 = {head_dim // 2}')
        if self.lam < 0 or self.vggt_merger_hidden_dim < 1:
            raise CheckpointError('lam must be >= 0 and vggt_merger_hidden_dim >= 1')
        if self.token_map is not None:
            if len(self.token_map) != int(self.text['vocab_size']):
                raise CheckpointError(f'token_map keeps {len(self.token_map)} ids but vocab_size '
                                      f'is {self.text["vocab_size"]}')
            missing = [t for t in (self.image_token_id, self.vision_start_token_id,
                                   self.vision_end_token_id) if t not in self.token_map]
            if missing:
                raise CheckpointError(f'token_map lacks the vision tokens {missing}')

    # ------------------------------------------------------------------ derived configs
    def vggt_config(self) -> VGGTConfig:
        """The aggregator's :class:`VGGTConfig`."""
        try:
            return VGGTConfig.from_dict(dict(self.vggt))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f'vggt_config: {exc}') from exc

    @property
    def num_vggt_layers(self) -> int:
        """Aggregator layers computed per frame: ``output_layer + 1`` (23 for VGGT-1B)."""
        return self.output_layer + 1

    @property
    def hidden_size(self) -> int:
        """LLM hidden size (3584 for the 7B)."""
        return int(self.text['hidden_size'])

    def qwen_config(self, attn_implementation: str | None = None) -> Qwen2_5_VLConfig:
        """The transformers 5.x ``Qwen2_5_VLConfig`` (explicit values, never the defaults).

        Args:
            attn_implementation: e.g. ``'sdpa'`` (default) or ``'eager'``.
        """
        text = {k: v for k, v in self.text.items() if k not in ('rope_theta', 'mrope_section')}
        if self.token_map is not None:
            # Ids of the full vocabulary, outside the trimmed rows; the engine takes its end
            # tokens from the tokenizer, so transformers need not know them.
            text['bos_token_id'] = text['eos_token_id'] = None
        text['rope_parameters'] = {'rope_type': 'default',
                                   'rope_theta': float(self.text['rope_theta']),
                                   'mrope_section': list(self.text['mrope_section'])}
        text['tie_word_embeddings'] = self.tie_word_embeddings
        vision = dict(self.vision)
        vision['fullatt_block_indexes'] = list(vision['fullatt_block_indexes'])
        config = Qwen2_5_VLConfig(
            text_config=text, vision_config=vision,
            tie_word_embeddings=self.tie_word_embeddings,
            **{k: getattr(self, k) for k in TOKEN_KEYS})
        if attn_implementation is not None:
            config._attn_implementation = attn_implementation
        return config

    # ------------------------------------------------------------------ config.json
    def to_json_dict(self) -> dict[str, Any]:
        """The released ``config.json`` content (transformers 4.50 layout + JanusVLN keys)."""
        data: dict[str, Any] = {'architectures': [ARCHITECTURE], 'model_type': MODEL_TYPE}
        for key in TEXT_KEYS:
            if key in self.text:
                data[key] = copy.deepcopy(self.text[key])
        data['rope_theta'] = float(self.text['rope_theta'])
        data['rope_scaling'] = {'type': 'mrope',
                                'mrope_section': list(self.text['mrope_section'])}
        data['tie_word_embeddings'] = self.tie_word_embeddings
        for key in TOKEN_KEYS:
            data[key] = getattr(self, key)
        vision = {k: copy.deepcopy(v) for k, v in self.vision.items()}
        vision['fullatt_block_indexes'] = list(vision['fullatt_block_indexes'])
        data['vision_config'] = vision
        data['lam'] = self.lam
        data['vggt_merger_hidden_dim'] = self.vggt_merger_hidden_dim
        data['reference_frame'] = self.reference_frame
        data['vggt_config'] = dict(self.vggt)
        data['image_width'] = self.image_width
        if self.token_map is not None:
            data['token_map'] = self.token_map.to_json()
        data['torch_dtype'] = 'float32'
        # The layout's era; without it HF's tokenizer loader warns about a Mistral regex bug.
        data['transformers_version'] = '4.50.0'
        return data

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> JanusVLNConfig:
        """Parse a ``config.json`` (4.50 flat layout or 5.x ``text_config`` layout).

        Raises:
            CheckpointError: On another ``model_type`` or missing required fields.
        """
        model_type = data.get('model_type')
        if model_type != MODEL_TYPE:
            raise CheckpointError(f'config.json: expected model_type {MODEL_TYPE!r}, got '
                                  f'{model_type!r}')
        src = data.get('text_config') if isinstance(data.get('text_config'), dict) else data
        text = {k: copy.deepcopy(src[k]) for k in TEXT_KEYS if k in src}
        missing = [k for k in ('vocab_size', 'hidden_size', 'intermediate_size',
                               'num_hidden_layers', 'num_attention_heads') if k not in text]
        if missing:
            raise CheckpointError(f'config.json: missing text fields {missing}')
        rope = src.get('rope_parameters') or src.get('rope_scaling') or data.get('rope_scaling')
        rope = rope if isinstance(rope, dict) else {}
        if 'mrope_section' not in rope:
            raise CheckpointError('config.json: no mrope_section in rope_scaling/rope_parameters')
        text['mrope_section'] = [int(x) for x in rope['mrope_section']]
        text['rope_theta'] = float(rope.get('rope_theta', src.get('rope_theta',
                                                                  data.get('rope_theta', 1e6))))
        raw_vision = data.get('vision_config')
        if not isinstance(raw_vision, dict):
            raise CheckpointError('config.json: missing vision_config')
        vision = {k: copy.deepcopy(raw_vision[k]) for k in VISION_KEYS if k in raw_vision}
        if 'in_channels' not in vision and 'in_chans' in raw_vision:
            vision['in_channels'] = raw_vision['in_chans']
        vision.setdefault('out_hidden_size', text['hidden_size'])
        tie = bool(data.get('tie_word_embeddings', src.get('tie_word_embeddings', False)))
        vggt = data.get('vggt_config')
        vggt_dict = dict(vggt) if isinstance(vggt, dict) else VGGTConfig.real().to_dict()
        depth = int(vggt_dict.get('depth', VGGTConfig.real().depth))
        tokens = {k: int(data[k]) for k in TOKEN_KEYS if k in data}
        token_map = None
        raw_map = data.get('token_map')
        if raw_map is not None:
            try:
                token_map = TokenMap(raw_map['kept_ids'], int(raw_map['full_vocab_size']))
            except (TypeError, KeyError, ValueError) as exc:
                raise CheckpointError(f'config.json: bad token_map: {exc}') from exc
        return cls(text=text, vision=vision, vggt=vggt_dict, tie_word_embeddings=tie,
                   token_map=token_map,
                   lam=float(data.get('lam', 0.2)),
                   vggt_merger_hidden_dim=int(data.get('vggt_merger_hidden_dim', 4096)),
                   output_layer=int(data.get('output_layer', depth - 2)),
                   reference_frame=str(data.get('reference_frame', 'first')),
                   image_width=int(data.get('image_width', TARGET_WIDTH)), **tokens)

    # ------------------------------------------------------------------ presets
    @classmethod
    def tiny(cls) -> JanusVLNConfig:
        """A tiny random-weight model for CPU tests (real vocabulary, real vision structure).

        LLM hidden 64 x 2 layers (head_dim 16, mrope [2, 3, 3]), a 2-block vision tower with the
        real patch 14 / merge 2 / temporal 2 / window 112 structure, a tiny VGGT (2 block pairs,
        fused output 0 = ``depth - 2``), a 128-wide fusion MLP, and 140-pixel frames (a 4:3 camera
        gives 140x112 -> 4x5 = 20 tokens per image). About 20 M parameters, almost all in the
        151936-row embedding and LM head.
        """
        text = {'vocab_size': 151936, 'hidden_size': 64, 'intermediate_size': 256,
                'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 2,
                'hidden_act': 'silu', 'max_position_embeddings': 32768,
                'initializer_range': 0.02, 'rms_norm_eps': 1e-6, 'use_cache': True,
                'use_sliding_window': False, 'sliding_window': 32768, 'max_window_layers': 2,
                'attention_dropout': 0.0, 'bos_token_id': 151643, 'eos_token_id': 151645,
                'rope_theta': 1e6, 'mrope_section': [2, 3, 3]}
        vision = {'depth': 2, 'hidden_size': 64, 'intermediate_size': 128, 'num_heads': 4,
                  'hidden_act': 'silu', 'in_channels': 3, 'patch_size': 14,
                  'spatial_merge_size': 2, 'temporal_patch_size': 2, 'window_size': 112,
                  'out_hidden_size': 64, 'fullatt_block_indexes': [1], 'tokens_per_second': 2,
                  'initializer_range': 0.02}
        vggt = VGGTConfig.tiny()
        return cls(text=text, vision=vision, vggt=vggt.to_dict(), vggt_merger_hidden_dim=128,
                   output_layer=vggt.depth - 2, image_width=140)

    @classmethod
    def small(cls, token_map: TokenMap | None = None) -> JanusVLNConfig:
        """The small navigator trained in the built-in world (same architecture, small sizes).

        LLM hidden 256 x 4 layers (4 heads of 64, 2 KV heads, mrope [8, 12, 12]); a 4-block
        Qwen2.5-VL-structured ViT (hidden 192, window blocks 0 and 2, full attention 1 and 3);
        a VGGT aggregator of 3 block pairs at width 128 (fused output 1 = ``depth - 2``, 2
        DINOv2 blocks); a 512-wide fusion MLP; frames resized to width 224 (a 4:3 camera gives
        224x168: 192 VGGT patches, 48 merged tokens per image).

        Args:
            token_map: The trimmed vocabulary (``vocab_size = len(token_map)``); ``None`` keeps
                the full 151,936-row vocabulary (for counting only: that does not fit the
                small model's size budget).
        """
        vocab = len(token_map) if token_map is not None else 151936
        text = {'vocab_size': vocab, 'hidden_size': 256, 'intermediate_size': 768,
                'num_hidden_layers': 4, 'num_attention_heads': 4, 'num_key_value_heads': 2,
                'hidden_act': 'silu', 'max_position_embeddings': 32768,
                'initializer_range': 0.02, 'rms_norm_eps': 1e-6, 'use_cache': True,
                'use_sliding_window': False, 'sliding_window': 32768, 'max_window_layers': 4,
                'attention_dropout': 0.0, 'bos_token_id': 151643, 'eos_token_id': 151645,
                'rope_theta': 1e6, 'mrope_section': [8, 12, 12]}
        vision = {'depth': 4, 'hidden_size': 192, 'intermediate_size': 512, 'num_heads': 3,
                  'hidden_act': 'silu', 'in_channels': 3, 'patch_size': 14,
                  'spatial_merge_size': 2, 'temporal_patch_size': 2, 'window_size': 112,
                  'out_hidden_size': 256, 'fullatt_block_indexes': [1, 3],
                  'tokens_per_second': 2, 'initializer_range': 0.02}
        vggt = VGGTConfig(img_size=224, embed_dim=128, depth=3, num_heads=2, dino_depth=2,
                          dino_num_heads=2, layerscale_init=0.1)
        return cls(text=text, vision=vision, vggt=vggt.to_dict(), vggt_merger_hidden_dim=512,
                   output_layer=vggt.depth - 2, image_width=224, token_map=token_map)

    @classmethod
    def real(cls) -> JanusVLNConfig:
        """Qwen2.5-VL-7B + VGGT-1B aggregator + a 4096-wide merger (the released model's sizes)."""
        text = {'vocab_size': 152064, 'hidden_size': 3584, 'intermediate_size': 18944,
                'num_hidden_layers': 28, 'num_attention_heads': 28, 'num_key_value_heads': 4,
                'hidden_act': 'silu', 'max_position_embeddings': 128000,
                'initializer_range': 0.02, 'rms_norm_eps': 1e-6, 'use_cache': True,
                'use_sliding_window': False, 'sliding_window': 32768, 'max_window_layers': 28,
                'attention_dropout': 0.0, 'bos_token_id': 151643, 'eos_token_id': 151645,
                'rope_theta': 1e6, 'mrope_section': [16, 24, 24]}
        vision = {'depth': 32, 'hidden_size': 1280, 'intermediate_size': 3420, 'num_heads': 16,
                  'hidden_act': 'silu', 'in_channels': 3, 'patch_size': 14,
                  'spatial_merge_size': 2, 'temporal_patch_size': 2, 'window_size': 112,
                  'out_hidden_size': 3584, 'fullatt_block_indexes': [7, 15, 23, 31],
                  'tokens_per_second': 2, 'initializer_range': 0.02}
        vggt = VGGTConfig.real()
        return cls(text=text, vision=vision, vggt=vggt.to_dict(), vggt_merger_hidden_dim=4096,
                   output_layer=vggt.depth - 2, image_width=TARGET_WIDTH)

    @classmethod
    def preset(cls, name: str) -> JanusVLNConfig:
        """A preset by name (:data:`PRESETS`)."""
        if name == 'tiny':
            return cls.tiny()
        if name == 'small':
            return cls.small()
        if name == 'real':
            return cls.real()
        raise CheckpointError(f'unknown preset {name!r}; expected one of {PRESETS}')
