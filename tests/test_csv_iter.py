"""mx.io.CSVIter (round_batch wrap and its epoch rule, stale pad slots without it, dtypes, labels, bad files)
and NDArrayIter.idx naming each position's sample under shuffle."""
import numpy as np
import pytest

import graphc as mx


def _write(tmp_path, name, rows):
    p = tmp_path / name
    p.write_text(''.join(','.join(map(str, r)) + '\n' for r in rows))
    return str(p)


def _epoch(it):
    return [(b.data[0].asnumpy().tolist(), b.label[0].asnumpy().tolist(), b.pad) for b in it]


def test_round_batch_wraps_and_the_next_epoch_continues(tmp_path):
    d = _write(tmp_path, 'd.csv', [[1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]])
    it = mx.io.CSVIter(data_csv=d, data_shape=(3,), batch_size=3)
    assert it.provide_data[0].shape == (3, 3) and it.provide_label[0].shape == (3,)
    r = [[1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]
    assert _epoch(it) == [(r[0:3], [0, 0, 0], 0), ([r[3], r[0], r[1]], [0, 0, 0], 2)]
    it.reset()  # ignored after a wrapped batch: go on after the rows it borrowed
    assert _epoch(it) == [([r[2], r[3], r[0]], [0, 0, 0], 1)]
    it.reset()
    assert _epoch(it) == [([r[1], r[2], r[3]], [0, 0, 0], 0)]


def test_without_round_batch_pad_slots_keep_the_previous_batch(tmp_path):
    d = _write(tmp_path, 'd.csv', [[1, 2], [3, 4], [5, 6], [7, 8]])
    lab = _write(tmp_path, 'l.csv', [[7], [8], [9], [10]])
    it = mx.io.CSVIter(data_csv=d, data_shape=(2,), label_csv=lab, batch_size=3, round_batch=False)
    for _ in range(2):  # reset rewinds
        e = _epoch(it)
        assert e == [([[1, 2], [3, 4], [5, 6]], [7, 8, 9], 0), ([[7, 8], [3, 4], [5, 6]], [10, 8, 9], 2)]
        it.reset()


def test_dtypes_shapes_and_directories(tmp_path):
    (tmp_path / 'dir').mkdir()
    _write(tmp_path / 'dir', 'a.csv', [[2147483648] * 4])
    _write(tmp_path / 'dir', 'b.csv', [[5] * 4])
    it = mx.io.CSVIter(data_csv=str(tmp_path / 'dir'), data_shape=(2, 2), batch_size=2, dtype='int64',
                       label_shape=(2,), label_csv=_write(tmp_path, 'l.csv', [[1, 2], [3, 4]]))
    b = next(it)
    assert b.data[0].dtype == np.int64 and b.data[0].shape == (2, 2, 2)
    assert b.data[0].asnumpy()[0, 0, 0] == 2147483648 and b.data[0].asnumpy()[1, 1, 1] == 5
    assert b.label[0].shape == (2, 2) and it.getdata().shape == (2, 2, 2)


def test_bad_csv_files_name_file_and_line(tmp_path):
    bad = _write(tmp_path, 'bad.csv', [[1, 2, 3], [1, 2]])
    with pytest.raises(mx.base.GraphcLoadError, match=r'bad.csv:2: 2 values'):
        mx.io.CSVIter(data_csv=bad, data_shape=(3,))
    txt = _write(tmp_path, 'txt.csv', [['a', 1, 2]])
    with pytest.raises(mx.base.GraphcLoadError, match='not all float32'):
        mx.io.CSVIter(data_csv=txt, data_shape=(3,))
    with pytest.raises(mx.base.GraphcLoadError, match='does not fit'):
        mx.io.CSVIter(data_csv=_write(tmp_path, 'big.csv', [[2 ** 40]]), data_shape=(1,), dtype='int32')
    with pytest.raises(mx.base.GraphcError, match='cannot complete'):
        list(mx.io.CSVIter(data_csv=_write(tmp_path, 'one.csv', [[1]]), data_shape=(1,), batch_size=3))


def test_ndarrayiter_idx_is_the_epochs_order():
    data = np.arange(10, dtype='float32').reshape(10, 1)
    it = mx.io.NDArrayIter(data, batch_size=1, shuffle=True)
    for _ in range(2):
        got = [float(b.data[0].asnumpy()[0, 0]) for b in it]
        assert got == [float(i) for i in it.idx] and sorted(got) == list(range(10))
        it.reset()
