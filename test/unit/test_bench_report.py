"""GPU benchmark report: ratios over shared steps, card sizes only from the NVML figure."""

from bench.gpu_memory import CARD_USABLE_GIB, fits
from bench.gpu_report import markdown, ratio_same_steps, speed_ratios


def _run(label, variant_of, ms_of, steps=range(0, 80), fill=57, **extra):
    rows = [{'step': s, 'variant': variant_of(s), 'ms': {'total': ms_of(s)},
             'instrumented': s == 60} for s in steps]
    return {'label': label, 'kind': label.split()[0], 'rows': rows, 'full_window_from_step': fill,
            'summary': {}, 'growth': {}, 'peak_gib': 20.0, **extra}


def test_ratio_uses_only_the_step_indices_both_runs_have():
    # the reference is fast on the steps it alone ran: they must not enter the ratio
    ref = _run('reference', lambda s: 'tokens4' if s % 2 == 0 else 'tokens24',
               lambda s: 400.0 if s < 66 else 1000.0, steps=range(0, 80))
    eng = _run('parity', lambda s: 'free' if s % 4 == 3 else 'forced', lambda s: 200.0,
               steps=range(66, 80))
    res = ratio_same_steps(ref, 'tokens4', eng, 'forced')
    common = [s for s in range(66, 80) if s % 2 == 0 and s % 4 != 3]
    assert res['n'] == len(common) and res['steps'] == [common[0], common[-1]]
    assert res['reference_p50_ms'] == 1000.0 and res['engine_p50_ms'] == 200.0
    assert res['ratio'] == 5.0
    ratios = speed_ratios({'runs': [ref, eng]})
    assert list(ratios)[0].startswith('reference (4 tokens)')  # the realistic ratio first
    assert ratio_same_steps(ref, 'tokens4', _run('parity', lambda s: 'forced', lambda s: 1.0,
                                                 steps=range(0, 50)), 'forced') is None


def test_card_size_comes_from_the_nvml_figure_only():
    usable = CARD_USABLE_GIB['24 GB card (A10)']
    assert usable == 22.5
    assert fits(None) == {'24 GB card (A10)': None}
    assert fits(22.4) == {'24 GB card (A10)': True}
    assert fits(22.6) == {'24 GB card (A10)': False}
    run = _run('parity', lambda s: 'forced', lambda s: 100.0, peak_reserved_gib=21.0,
               nvml_process_gib_max=None)
    report = {'card': 'x', 'torch': 't', 'transformers': 't', 'python': 'p', 'date': 'd',
              'options': {'vggt_attention': 'cudnn', 'vit_attention': 'varlen'},
              'runs': [run], 'decode_note': 'n'}
    text = markdown(report)
    assert '| parity | 20.00 | 21.00 | not measured | 24 GB card (A10): not measured |' in text
