"""``janusvln eval`` (in process) and ``janusvln demo`` (through ROS) as a user runs them."""

import argparse
import json
import os
import pathlib
import subprocess
import sys

import pytest

from janusvln_ros.cli import sim


def _run(argv):
    parser = argparse.ArgumentParser()
    sim.register(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_eval_oracle_writes_table_json_and_pngs(tmp_path, capsys):
    assert _run(['eval', '--policy', 'oracle', '--episodes', '2', '--out', str(tmp_path),
                 '--gif', '--width', '64', '--height', '48']) == 0
    table = capsys.readouterr().out
    assert 'ep00' in table and 'ep01' in table and 'mean' in table
    report = json.loads((tmp_path / 'metrics.json').read_text())
    assert report['policy'] == 'oracle' and not report['ros']
    assert report['aggregate']['SR'] == 1.0 and report['aggregate']['episodes'] == 2
    assert [e['episode_id'] for e in report['episodes']] == ['ep00', 'ep01']
    assert report['episodes'][0]['actions'][-1] == 'STOP'
    for name in ('ep00_topdown.png', 'ep01_topdown.png', 'ep00_camera.gif'):
        assert (tmp_path / name).stat().st_size > 1000


def test_eval_model_defaults_to_the_shipped_navigator(tmp_path):
    from janusvln_ros.core.models import shipped_val_unseen_episodes
    assert _run(['eval', '--policy', 'model', '--episodes-file',
                 str(shipped_val_unseen_episodes()), '--episode-ids', sim.DEMO_EPISODE,
                 '--max-steps', '40', '--out', str(tmp_path)]) == 0
    report = json.loads((tmp_path / 'metrics.json').read_text())
    assert report['checkpoint'] == 'janusvln_ros:navigator'
    episode = report['episodes'][0]
    assert episode['episode_id'] == sim.DEMO_EPISODE
    # the demo episode: the shipped model reaches the goal in process too
    assert episode['metrics']['sr'] == 1.0, episode


def test_eval_with_the_tiny_model_in_process(tmp_path, tiny_unprimed_checkpoint):
    assert _run(['eval', '--policy', 'model', '--checkpoint', str(tiny_unprimed_checkpoint),
                 '--episode-ids', 'ep10', '--max-steps', '3', '--out', str(tmp_path)]) == 0
    report = json.loads((tmp_path / 'metrics.json').read_text())
    episode = report['episodes'][0]
    assert 1 <= len(episode['actions']) <= 3 + 1
    assert episode['metrics']['steps'] <= 3


@pytest.fixture(scope='module')
def tiny_unprimed_checkpoint(random_tiny_dir):
    return random_tiny_dir


def test_demo_through_ros_leaves_metrics_png_and_gif(tmp_path, tiny_unprimed_checkpoint):
    """The README's first command, with a given checkpoint (needs ``unshare -n``)."""
    out = tmp_path / 'demo'
    code = ('import argparse, sys; from janusvln_ros.cli import sim; '
            'p = argparse.ArgumentParser(); sim.register(p.add_subparsers(dest="c")); '
            'a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))')
    done = subprocess.run(
        [sys.executable, '-c', code, 'demo', '--checkpoint', str(tiny_unprimed_checkpoint),
         '--max-steps', '4', '--out', str(out), '--width', '64', '--height', '64'],
        capture_output=True, text=True, timeout=240, env=dict(os.environ))
    logs = {p.name: p.read_text()[-2000:] for p in pathlib.Path(out).glob('*.log')}
    assert done.returncode == 0, (done.stdout, done.stderr[-3000:], logs)
    report = json.loads((out / 'metrics.json').read_text())
    assert report['ros'] and report['policy'] == 'model'
    assert report['episodes'][0]['episode_id'] == sim.DEMO_EPISODE
    assert (out / 'trajectory.png').stat().st_size > 1000
    assert (out / 'camera.gif').stat().st_size > 100
    assert 'wrote' in done.stdout
