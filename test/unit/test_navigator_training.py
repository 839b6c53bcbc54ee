"""The small navigator's training pieces: vocabulary map, batched forward == engine, resume."""

import json

import numpy as np
import pytest
import torch

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.engine import JanusVLNEngine
from janusvln_ros.core.errors import InputError
from janusvln_ros.model.checkpoint import load_checkpoint, save_checkpoint
from janusvln_ros.model.config import JanusVLNConfig
from janusvln_ros.model.janusvln import JanusVLNForNavigation
from janusvln_ros.model.preprocess import prepare_frame, resize_rgb
from janusvln_ros.model.prompt import PromptBuilder
from janusvln_ros.model.tokenizer import load_bundled_tokenizer
from janusvln_ros.model.vocab import TokenMap, VocabularyError
from janusvln_ros.training.batch import PromptCache
from janusvln_ros.training.dataset import NavigationData
from janusvln_ros.training.forward import EqualGridVision, frames_to_unit, NavigatorModule
from janusvln_ros.training.forward import patchify_batch
from janusvln_ros.training.tokens import navigator_token_map
from janusvln_ros.training.vision_attention import enable_training_vision_attention

INSTRUCTION = 'Leave the bedroom. The white fridge is in the kitchen: stop next to it.'


@pytest.fixture(scope='module')
def tokenizer():
    return load_bundled_tokenizer()


@pytest.fixture(scope='module')
def small_model(tokenizer):
    torch.manual_seed(0)
    return JanusVLNForNavigation.from_config(JanusVLNConfig.small(navigator_token_map(tokenizer)))


@pytest.fixture(scope='module')
def frames():
    rng = np.random.default_rng(0)
    raw = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(11)]
    return raw, np.stack([resize_rgb(f, 224) for f in raw])


def test_token_map_round_trip_and_refusal():
    token_map = TokenMap([5, 9, 151655], 151936)
    assert len(token_map) == 3 and 9 in token_map and 10 not in token_map
    assert token_map.compact(torch.tensor([[151655, 5]])).tolist() == [[2, 0]]
    assert token_map.original(torch.tensor([1])).tolist() == [9]
    with pytest.raises(VocabularyError) as info:
        token_map.compact(torch.tensor([5, 7, 8]))
    assert info.value.unknown_ids == [7, 8]
    full = token_map.expand_logits(torch.tensor([[1.0, 2.0, 3.0]]))
    assert full.shape == (1, 151936) and int(full.argmax()) == 151655
    assert float(full[0, 0]) == torch.finfo(torch.float32).min
    with pytest.raises(ValueError):
        TokenMap([1, 1], 10)


def test_small_checkpoint_size_and_token_map_survive_save_load(small_model, tokenizer,
                                                               tmp_path):
    config = small_model.config
    assert config.image_width == 224 and config.hidden_size == 256
    export = JanusVLNForNavigation.from_config(config, dtype=torch.bfloat16)
    save_checkpoint(export, tokenizer, tmp_path)
    size = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert size <= 48 * 1024 ** 2, size
    saved = json.loads((tmp_path / 'config.json').read_text())
    assert saved['token_map']['kept_ids'] == list(config.token_map.kept_ids)
    assert saved['vocab_size'] == len(config.token_map)
    model, _ = load_checkpoint(tmp_path, progress=False)
    assert model.token_map.kept_ids == config.token_map.kept_ids


def test_text_outside_the_vocabulary_is_refused_by_the_engine(small_model, tokenizer):
    engine = JanusVLNEngine(EngineConfig(engine='janusvln'), model=small_model,
                            tokenizer=tokenizer)
    engine.reset(INSTRUCTION)  # the world's own words are accepted
    with pytest.raises(InputError, match='xylophone'):
        engine.reset('Find the xylophone in the kitchen.')


def test_batched_patchify_and_vision_equal_the_engine_preprocessing(small_model, frames):
    raw, small = frames
    pixels, grid = patchify_batch(frames_to_unit(torch.from_numpy(small[:3])))
    expected = [prepare_frame(f, 224) for f in raw[:3]]
    assert torch.equal(pixels, torch.cat([p.pixel_values for p in expected]))
    with torch.no_grad():
        reference = torch.stack(small_model.vit_embeds(pixels, grid))
        fast = EqualGridVision(small_model.qwen.model.visual)(pixels, 3, 12, 16)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-6)


def test_grouped_vision_attention_equals_the_default(tokenizer, frames):
    _, small = frames
    torch.manual_seed(1)
    model = JanusVLNForNavigation.from_config(JanusVLNConfig.small(navigator_token_map(tokenizer)))
    pixels, grid = patchify_batch(frames_to_unit(torch.from_numpy(small[:4])))
    with torch.no_grad():
        before = torch.stack(model.vit_embeds(pixels, grid))
        enable_training_vision_attention(model.qwen)
        after = torch.stack(model.vit_embeds(pixels, grid))
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)


def test_training_forward_equals_the_engine_parity_step(small_model, tokenizer, frames):
    """Same first-token logits as the engine while the prompt holds every frame (t <= 8)."""
    raw, small = frames
    engine = JanusVLNEngine(EngineConfig(engine='janusvln', mode='parity'), model=small_model,
                            tokenizer=tokenizer)
    engine.reset(INSTRUCTION)
    cache = PromptCache(PromptBuilder(tokenizer), 48, (1, 12, 16))
    module = NavigatorModule(small_model).eval()
    kept = torch.tensor(small_model.token_map.kept_ids)
    tensor_frames = torch.from_numpy(small)
    for t in range(11):
        engine.step(raw[t])
        batch = cache.collate([(0, t, INSTRUCTION, 1)])
        with torch.no_grad():
            out = module(batch, tensor_frames)
        ours = small_model.token_map.expand_logits(out['first_logits'][0])
        diff = float((ours - engine.last_logits)[kept].abs().max())
        if t <= 8:
            assert diff < 1e-4, (t, diff)
        assert int(ours.argmax()) == int(engine.last_logits.argmax())


def test_answer_labels_are_the_action_word_and_the_end_token(tokenizer):
    cache = PromptCache(PromptBuilder(tokenizer), 48, (1, 12, 16))
    batch = cache.collate([(0, 0, INSTRUCTION, 0), (10, 12, INSTRUCTION, 3)])
    stop, right = batch.labels.tolist()
    assert tokenizer.decode([i for i in stop if i >= 0]) == 'STOP<|im_end|>'
    assert tokenizer.decode([i for i in right if i >= 0]) == 'TURN_RIGHT<|im_end|>'
    assert batch.num_images.tolist() == [1, 9]
    assert batch.frames.tolist()[1:] == [10 + i for i in (0, 1, 3, 4, 6, 7, 9, 10, 12)]
    # each label position is the token right before the label
    for b in range(2):
        n = int((batch.labels[b] >= 0).sum())
        positions = batch.label_pos[b, :n]
        assert batch.ids[b, positions + 1].tolist() == batch.labels[b, :n].tolist()


def synthetic_data(paths=3, frames_per_path=10, seed=0):
    rng = np.random.default_rng(seed)
    n = paths * frames_per_path
    path_records = [{'path_id': f'p{i}', 'frame_offset': i * frames_per_path,
                     'num_frames': frames_per_path,
                     'episodes': [{'episode_id': f'p{i}', 'instruction': INSTRUCTION,
                                   'style': 'coarse'}]} for i in range(paths)]
    return NavigationData(frames=rng.integers(0, 256, (n, 168, 224, 3), dtype=np.uint8),
                          depth=np.ones((n, 24, 32), np.float16),
                          actions=rng.integers(0, 4, n).astype(np.uint8),
                          poses=np.zeros((n, 3), np.float32), paths=path_records,
                          image_width=224)


@pytest.mark.slow
def test_train_saves_and_resumes(tmp_path):
    from janusvln_ros.training.trainer import train, TrainConfig
    data = synthetic_data()
    config = TrainConfig(data=(), out=str(tmp_path), steps=2, batch_size=2, device='cpu',
                         log_every=1, save_dtype='float32')
    first = train(config, data=data, progress=False)
    assert first['finished'] and first['step'] == 2
    state = json.loads((tmp_path / 'model' / 'trainer_state.json').read_text())
    assert state['info']['step'] == 2
    resumed = train(TrainConfig(**{**config.__dict__, 'steps': 3}), data=data, progress=False)
    assert resumed['step'] == 3
    lines = [json.loads(x) for x in (tmp_path / 'train_log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in lines] == [1, 2, 3]
    assert all(np.isfinite(r['loss']) for r in lines)
