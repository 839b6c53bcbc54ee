"""Checkpoint IO: released layout, key mapping, bit-identical round trip, clear errors."""

import dataclasses
import json
import logging
import shutil

import pytest
from safetensors.torch import load_file, save_file
import torch

from janusvln_ros.model.checkpoint import (CheckpointError, from_released_key, load_checkpoint,
                                           save_checkpoint, to_released_key)
from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.janusvln import JanusVLNForNavigation
from janusvln_ros.model.tokenizer import bundled_qwen_tokenizer_dir

torch.set_num_threads(1)

INDEX = 'model.safetensors.index.json'


@pytest.fixture
def ckpt(random_tiny_dir, tmp_path):
    """A private copy of the random tiny checkpoint, free to damage."""
    dst = tmp_path / 'ckpt'
    shutil.copytree(random_tiny_dir, dst)
    return dst


def _index(path):
    return json.loads((path / INDEX).read_text())


def _rewrite_shard(path, key, fn):
    """Apply fn to the shard dict that holds ``key`` (fn may delete or replace tensors)."""
    index = _index(path)
    shard = path / index['weight_map'][key]
    tensors = load_file(str(shard))
    fn(tensors)
    save_file(tensors, str(shard), metadata={'format': 'pt'})


def test_released_layout(random_tiny_dir):
    files = sorted(p.name for p in random_tiny_dir.iterdir())
    assert 'model-00001-of-00002.safetensors' in files
    assert 'model-00002-of-00002.safetensors' in files
    for name in ('config.json', INDEX, 'tokenizer.json', 'tokenizer_config.json',
                 'chat_template.json', 'preprocessor_config.json'):
        assert name in files
    config = json.loads((random_tiny_dir / 'config.json').read_text())
    assert config['model_type'] == 'qwen2_5_vl'
    assert config['architectures'] == ['Qwen2_5_VLForConditionalGenerationForJanusVLN']
    assert config['lam'] == 0.2 and config['reference_frame'] == 'first'
    assert 'hidden_size' in config and 'vision_config' in config and 'text_config' not in config
    assert config['rope_scaling']['mrope_section'] == [2, 3, 3]
    keys = set(_index(random_tiny_dir)['weight_map'])
    prefixes = {k.split('.')[0] for k in keys}
    assert prefixes == {'model', 'visual', 'lm_head', 'vggt', 'merger'}
    assert 'model.embed_tokens.weight' in keys and 'model.norm.weight' in keys
    assert 'visual.merger.mlp.0.weight' in keys and 'merger.mlp.0.weight' in keys
    assert 'vggt.aggregator.camera_token' in keys and 'lm_head.weight' in keys
    assert not any(k.startswith(('qwen.', 'model.language_model', 'model.visual')) for k in keys)


def test_key_mapping_both_ways():
    pairs = {
        'model.layers.0.self_attn.q_proj.weight':
            'qwen.model.language_model.layers.0.self_attn.q_proj.weight',
        'model.embed_tokens.weight': 'qwen.model.language_model.embed_tokens.weight',
        'model.norm.weight': 'qwen.model.language_model.norm.weight',
        'visual.blocks.3.attn.qkv.bias': 'qwen.model.visual.blocks.3.attn.qkv.bias',
        'visual.merger.mlp.0.weight': 'qwen.model.visual.merger.mlp.0.weight',
        'merger.mlp.0.weight': 'merger.mlp.0.weight',
        'merger.ln_q.weight': 'merger.ln_q.weight',
        'lm_head.weight': 'qwen.lm_head.weight',
        'vggt.aggregator.frame_blocks.0.attn.qkv.weight':
            'vggt.aggregator.frame_blocks.0.attn.qkv.weight',
    }
    for disk, name in pairs.items():
        assert from_released_key(disk) == name
        assert to_released_key(name) == disk
    # 5.x-style names are read too; DPT heads are skipped; strangers are errors
    assert from_released_key('model.language_model.norm.weight') == \
        'qwen.model.language_model.norm.weight'
    assert from_released_key('model.visual.merger.ln_q.weight') == \
        'qwen.model.visual.merger.ln_q.weight'
    assert from_released_key('vggt.depth_head.head.0.weight') is None
    assert from_released_key('vggt.point_head.x') is None
    with pytest.raises(CheckpointError, match='unexpected key'):
        from_released_key('vggt.camera_head.trunk.0.weight')
    # every tensor of the model survives the round trip of names
    with torch.device('meta'):
        model = JanusVLNForNavigation(JanusVLNConfig.tiny())
    for name in model.state_dict():
        assert from_released_key(to_released_key(name)) == name


def test_round_trip_bit_identical(primed_tiny_dir, tmp_path):
    model, tokenizer = load_checkpoint(primed_tiny_dir, progress=False)
    out = tmp_path / 'again'
    shards = save_checkpoint(model, tokenizer, out, max_shard_bytes=20 * 1024 ** 2)
    assert len(shards) >= 4
    again, tok2 = load_checkpoint(out, progress=False)
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    for (name, buf), (_, buf2) in zip(model.named_buffers(), again.named_buffers()):
        assert buf.dtype == torch.float32 and torch.equal(buf, buf2), name
    assert tok2.chat_template == tokenizer.chat_template
    assert not any(p.requires_grad for p in again.parameters())
    assert not any(p.is_meta for p in again.parameters())


def test_load_bfloat16_keeps_rope_tables_float32(random_tiny_dir):
    model, _ = load_checkpoint(random_tiny_dir, dtype=torch.bfloat16, progress=False)
    assert model.dtype == torch.bfloat16 and model.vggt_dtype == torch.bfloat16
    assert model.qwen.model.language_model.rotary_emb.inv_freq.dtype == torch.float32


def test_dpt_heads_are_skipped_with_one_info_line(ckpt, caplog):
    def add_heads(tensors):
        tensors['vggt.depth_head.projects.0.weight'] = torch.zeros(2, 2)
        tensors['vggt.point_head.scratch.layer1_rn.weight'] = torch.zeros(3)
    _rewrite_shard(ckpt, 'model.norm.weight', add_heads)
    with caplog.at_level(logging.INFO, logger='janusvln_ros.model.checkpoint'):
        load_checkpoint(ckpt, progress=False)
    lines = [r for r in caplog.records if 'depth_head' in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO


def test_missing_shard(ckpt):
    (ckpt / 'model-00002-of-00002.safetensors').unlink()
    with pytest.raises(CheckpointError, match='missing shard'):
        load_checkpoint(ckpt, progress=False)


def test_missing_key(ckpt):
    _rewrite_shard(ckpt, 'model.norm.weight', lambda t: t.pop('model.norm.weight'))
    with pytest.raises(CheckpointError, match=r'missing .*model\.norm\.weight'):
        load_checkpoint(ckpt, progress=False)


def test_unexpected_shape(ckpt):
    def damage(tensors):
        tensors['merger.mlp.2.bias'] = torch.zeros(7)
    _rewrite_shard(ckpt, 'merger.mlp.2.bias', damage)
    with pytest.raises(CheckpointError, match=r"unexpected shape for 'merger.mlp.2.bias'.*\(7,\)"):
        load_checkpoint(ckpt, progress=False)


def test_unexpected_key(ckpt):
    def add(tensors):
        tensors['vggt.camera_head.trunk.0.weight'] = torch.zeros(1)
    _rewrite_shard(ckpt, 'model.norm.weight', add)
    with pytest.raises(CheckpointError, match='unexpected key'):
        load_checkpoint(ckpt, progress=False)


def test_pickle_checkpoint_is_refused(ckpt):
    for shard in ckpt.glob('*.safetensors'):
        shard.unlink()
    (ckpt / INDEX).unlink()
    (ckpt / 'pytorch_model.bin').write_bytes(b'not unpickled')
    with pytest.raises(CheckpointError, match='pickle'):
        load_checkpoint(ckpt, progress=False)


def test_other_model_type(ckpt):
    config = json.loads((ckpt / 'config.json').read_text())
    config['model_type'] = 'llava'
    (ckpt / 'config.json').write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="model_type 'qwen2_5_vl', got 'llava'"):
        load_checkpoint(ckpt, progress=False)


def test_missing_config_and_directory(ckpt, tmp_path):
    (ckpt / 'config.json').unlink()
    with pytest.raises(CheckpointError, match='missing config.json'):
        load_checkpoint(ckpt, progress=False)
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint(tmp_path / 'nowhere', progress=False)


def test_single_file_and_5x_key_names(random_tiny_dir, tmp_path):
    """A single model.safetensors with transformers-5.x names loads to the same tensors."""
    model, tokenizer = load_checkpoint(random_tiny_dir, progress=False)
    out = tmp_path / 'single'
    shutil.copytree(random_tiny_dir, out)
    for shard in out.glob('model-*.safetensors'):
        shard.unlink()
    (out / INDEX).unlink()
    tensors = {}
    for name, t in model.state_dict().items():
        tensors[name.removeprefix('qwen.')] = t.contiguous()
    save_file(tensors, str(out / 'model.safetensors'))
    again, _ = load_checkpoint(out, progress=False)
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_cli_inspect_preset_real(capsys):
    from janusvln_ros.cli import main
    assert main(['checkpoint', 'inspect', '--preset', 'real', '--json']) == 0
    counts = json.loads(capsys.readouterr().out)['parameters']
    assert round(counts['qwen2_5_vl'] / 1e9, 2) == 8.29
    assert round(counts['vggt_aggregator'] / 1e6, 1) == 909.1
    assert round(counts['merger'] / 1e6, 1) == 48.2
    assert main(['checkpoint', 'inspect', '--preset', 'real']) == 0
    table = capsys.readouterr().out
    assert '8.29 B' in table and '909.1 M' in table and '48.2 M' in table
    assert main(['checkpoint', 'inspect']) == 2


def test_cli_init_tiny_and_inspect_dir(tmp_path, capsys):
    from janusvln_ros.cli import main
    out = tmp_path / 'tiny'
    assert main(['checkpoint', 'init-tiny', str(out), '--seed', '3', '--no-prime']) == 0
    assert 'not primed' in capsys.readouterr().out
    assert main(['checkpoint', 'inspect', str(out), '--json']) == 0
    result = json.loads(capsys.readouterr().out)
    assert result['tensors_on_disk'] == 172 and result['shards'] == 2
    model, _ = load_checkpoint(out, progress=False)
    assert sum(p.numel() for p in model.parameters()) == result['parameters']['total']
    assert main(['checkpoint', 'inspect', str(tmp_path / 'none')]) == 1


def test_tied_embeddings_round_trip(tmp_path):
    config = dataclasses.replace(JanusVLNConfig.tiny(), tie_word_embeddings=True)
    torch.manual_seed(5)
    model = JanusVLNForNavigation.from_config(config)
    assert model.qwen.lm_head.weight is model.qwen.model.language_model.embed_tokens.weight
    save_checkpoint(model, None, tmp_path, max_shard_bytes=10 ** 9)
    assert 'lm_head.weight' not in _index(tmp_path)['weight_map']
    shutil.copy(bundled_qwen_tokenizer_dir() / 'tokenizer.json', tmp_path / 'tokenizer.json')
    again, _ = load_checkpoint(tmp_path, progress=False)
    assert again.qwen.lm_head.weight is again.qwen.model.language_model.embed_tokens.weight
    assert torch.equal(again.qwen.lm_head.weight, model.qwen.lm_head.weight)
