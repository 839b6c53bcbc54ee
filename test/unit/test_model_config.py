"""JanusVLNConfig: presets, the released config.json layout both ways, validation."""

import pytest

from janusvln_ros.model.config import CheckpointError, JanusVLNConfig, TEXT_KEYS
from janusvln_ros.model.vggt import VGGTConfig

# Abridged from the shape of a transformers-4.50-era Qwen2.5-VL-7B config.json + JanusVLN keys.
RELEASED_STYLE = {
    'architectures': ['Qwen2_5_VLForConditionalGenerationForJanusVLN'],
    'attention_dropout': 0.0, 'bos_token_id': 151643, 'eos_token_id': 151645,
    'vision_start_token_id': 151652, 'vision_end_token_id': 151653, 'vision_token_id': 151654,
    'image_token_id': 151655, 'video_token_id': 151656, 'hidden_act': 'silu',
    'hidden_size': 3584, 'initializer_range': 0.02, 'intermediate_size': 18944,
    'max_position_embeddings': 128000, 'max_window_layers': 28, 'model_type': 'qwen2_5_vl',
    'num_attention_heads': 28, 'num_hidden_layers': 28, 'num_key_value_heads': 4,
    'rms_norm_eps': 1e-06, 'rope_theta': 1000000.0, 'sliding_window': 32768,
    'tie_word_embeddings': False, 'torch_dtype': 'bfloat16', 'transformers_version': '4.50.0',
    'use_cache': True, 'use_sliding_window': False,
    'vision_config': {'depth': 32, 'hidden_act': 'silu', 'hidden_size': 1280,
                      'intermediate_size': 3420, 'num_heads': 16, 'in_chans': 3,
                      'out_hidden_size': 3584, 'patch_size': 14, 'spatial_merge_size': 2,
                      'spatial_patch_size': 14, 'window_size': 112,
                      'fullatt_block_indexes': [7, 15, 23, 31], 'tokens_per_second': 2,
                      'temporal_patch_size': 2},
    'rope_scaling': {'type': 'default', 'mrope_section': [16, 24, 24], 'rope_type': 'default'},
    'vocab_size': 152064, 'lam': 0.2, 'reference_frame': 'first',
    'vggt_merger_hidden_dim': 4096, 'add_ground_classifier': False, 'use_vggt_feature': True,
}


def test_released_config_parses_to_the_real_preset():
    parsed = JanusVLNConfig.from_json_dict(RELEASED_STYLE)
    real = JanusVLNConfig.real()
    assert parsed.vggt == VGGTConfig.real().to_dict()  # no vggt dict -> VGGT-1B
    assert parsed.output_layer == 22 and parsed.image_width == 644
    assert parsed.text['mrope_section'] == [16, 24, 24]
    assert parsed.vision['in_channels'] == 3
    for key in ('hidden_size', 'num_hidden_layers', 'num_key_value_heads', 'vocab_size'):
        assert parsed.text[key] == real.text[key]
    for key in set(real.vision) - {'initializer_range'}:
        assert parsed.vision[key] == real.vision[key], key
    q = parsed.qwen_config()
    assert q.text_config.hidden_size == 3584 and q.vision_config.hidden_size == 1280
    assert q.text_config.rope_parameters['mrope_section'] == [16, 24, 24]
    assert q.vision_config.tokens_per_second == 2 and not q.tie_word_embeddings


@pytest.mark.parametrize('preset', ['tiny', 'real'])
def test_json_round_trip(preset):
    config = JanusVLNConfig.preset(preset)
    data = config.to_json_dict()
    assert data['model_type'] == 'qwen2_5_vl' and 'text_config' not in data
    assert data['architectures'] == ['Qwen2_5_VLForConditionalGenerationForJanusVLN']
    assert JanusVLNConfig.from_json_dict(data) == config


def test_5x_layout_is_read():
    data = JanusVLNConfig.tiny().to_json_dict()
    text = {k: data.pop(k) for k in TEXT_KEYS}
    data.pop('rope_scaling')
    text['rope_parameters'] = {'rope_type': 'default', 'rope_theta': 1e6,
                               'mrope_section': [2, 3, 3]}
    data['text_config'] = text
    assert JanusVLNConfig.from_json_dict(data) == JanusVLNConfig.tiny()


def test_tiny_preset_structure():
    tiny = JanusVLNConfig.tiny()
    q = tiny.qwen_config()
    assert q.vision_config.patch_size == 14 and q.vision_config.spatial_merge_size == 2
    assert q.vision_config.temporal_patch_size == 2 and q.vision_config.window_size == 112
    assert sum(tiny.text['mrope_section']) == 64 // 4 // 2
    assert tiny.output_layer == tiny.vggt_config().depth - 2


def test_validation():
    data = JanusVLNConfig.tiny().to_json_dict()
    with pytest.raises(CheckpointError, match='model_type'):
        JanusVLNConfig.from_json_dict({**data, 'model_type': 'qwen2_vl'})
    with pytest.raises(CheckpointError, match='mrope_section'):
        JanusVLNConfig.from_json_dict({**data, 'rope_scaling': {'mrope_section': [2, 2, 2]}})
    with pytest.raises(CheckpointError, match='output_layer'):
        JanusVLNConfig.from_json_dict({**data, 'output_layer': 5})
    with pytest.raises(CheckpointError, match='image_width'):
        JanusVLNConfig.from_json_dict({**data, 'image_width': 100})
    with pytest.raises(CheckpointError, match='preset'):
        JanusVLNConfig.preset('huge')
