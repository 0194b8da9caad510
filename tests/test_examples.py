"""The examples run end to end and learn (short settings; the full numbers are in the README/notes)."""
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'examples'))


def test_seed_two_layer_predicts_within_005():
    import seed_two_layer
    out = seed_two_layer.main([])
    for name, pred in out.items():
        np.testing.assert_allclose(pred, [0, 0, 1, 1], atol=0.05, err_msg=name)


def test_lenet_mnist_learns_on_a_subset(tmp_path, capsys):
    import json
    import lenet_mnist
    res = lenet_mnist.main(['--limit', '3050', '--batch-size', '100', '--json', str(tmp_path / 'r.json')])
    assert res[0]['test_acc'] > 0.75, res  # chance is 0.10; the full epoch reaches about 0.98
    saved = json.load(open(tmp_path / 'r.json'))
    assert saved['epochs'][0]['test_acc'] == res[0]['test_acc']
    err = capsys.readouterr().err  # the progress bar counts samples (the last batch has 50), not batches * 100
    assert '3050/3050' in err and '3100' not in err, err


def test_char_lstm_trains_samples_and_resumes(tmp_path):
    import char_lstm
    common = ['--hidden', '32', '--seq-len', '8', '--chars', '30000', '--sample-every', '0', '--checkpoint-every', '5',
              '--checkpoint-dir', str(tmp_path)]
    res = char_lstm.main(['--max-steps', '10'] + common)
    assert res['steps'] == 10 and len(res['sample']) > 100
    assert (tmp_path / 'char_lstm.params').exists() and (tmp_path / 'char_lstm.json').exists()
    again = char_lstm.main(['--max-steps', '15', '--resume'] + common)
    assert again['steps'] == 15 and np.isfinite(again['val_perplexity'])


def test_char_lstm_unrolled_cells_train_as_eagerly(tmp_path):
    """--unroll (LSTMCells stepped over time): hybridized, the fuse_rnn pass runs them as the fused op; 5
    training steps give the validation perplexity of the same steps run eagerly, cell by cell (float32
    summation order differs: rtol 1e-4), with 2 layers."""
    import char_lstm
    common = ['--unroll', '--layers', '2', '--hidden', '16', '--seq-len', '6', '--chars', '20000', '--max-steps', '5',
              '--sample-every', '0']
    hyb = char_lstm.main(common)
    eager = char_lstm.main(common + ['--no-hybridize'])
    assert hyb['model'] == 'cells' and len(hyb['sample']) > 100
    np.testing.assert_allclose(hyb['val_perplexity'], eager['val_perplexity'], rtol=1e-4)


def test_char_lstm_resume_with_the_other_model_says_which_flag(tmp_path):
    import pytest
    import char_lstm
    common = ['--hidden', '8', '--seq-len', '4', '--batch-size', '2', '--chars', '5000', '--sample-every', '0',
              '--checkpoint-every', '2', '--checkpoint-dir', str(tmp_path)]
    char_lstm.main(['--unroll', '--max-steps', '2'] + common)
    with pytest.raises(SystemExit, match='holds the cells model; resume with --unroll'):
        char_lstm.main(['--max-steps', '4', '--resume'] + common)


def test_finetune_loads_its_pretrained_file_replaces_the_output_and_moves_devices(tmp_path, capsys):
    """examples/finetune.py with a few images (the full run's time and accuracy are in the README)."""
    import hashlib
    import re
    import finetune
    res = finetune.main(['--train-images', '32', '--test-images', '32', '--pretrain-images', '32', '--batch-size', '32',
                         '--epochs', '1', '--size', '16', '--work', str(tmp_path)])
    saved = os.listdir(tmp_path / 'models')   # the "pretrained" file, named as MXNet's model store names it
    assert len(saved) == 1 and re.fullmatch(r'mobilenet0\.25-[0-9a-f]{8}\.params', saved[0]), saved
    sha = hashlib.sha1(open(tmp_path / 'models' / saved[0], 'rb').read()).hexdigest()
    assert saved[0] == f'mobilenet0.25-{sha[:8]}.params'
    assert sorted(os.listdir(tmp_path / 'train')) == [str(d) for d in range(10)]   # the image folder, one per digit
    assert len(res['lr_mult']) == 2 and set(res['lr_mult'].values()) == {5.0}   # the new Dense's weight and bias
    assert all(re.fullmatch(r'dense\d+_(weight|bias)', k) for k in res['lr_mult']), res['lr_mult']
    assert 0 <= res['test_acc'] <= 1 and res['reset_ctx_diff'] < 1e-6, res
    out = capsys.readouterr().out
    assert 'test accuracy' in out and 'reset_ctx: cpu(0) -> ' in out, out
