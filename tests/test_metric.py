"""mx.metric: averaging modes of the binary metrics, the multiclass PCC, local vs global stats, and creating a
metric back from its get_config() (dict or JSON), each checked against hand-counted confusion matrices."""
import json
import math

import numpy as np
import pytest

import graphc as mx


def _onehot(idx, k=2):
    return mx.nd.array(np.eye(k)[idx])


def test_f1_macro_averages_per_update_call_micro_pools_all():
    # call 1: labels [1,0,0,1], preds [1,1,0,0] -> tp 1, fp 1, fn 1: f1 = 0.5
    # call 2: labels [1,0], preds [1,0] -> f1 = 1
    l1, p1 = [mx.nd.array([1, 0]), mx.nd.array([0, 1])], [_onehot([1, 1]), _onehot([0, 0])]
    l2, p2 = [mx.nd.array([1, 0])], [_onehot([1, 0])]
    macro, micro = mx.metric.F1(average='macro'), mx.metric.create('f1', average='micro')
    for m in (macro, micro):
        m.update(l1, p1)
    assert macro.num_inst == 1 and micro.num_inst == 4  # one per call vs one per sample
    for m in (macro, micro):
        m.update(l2, p2)
    assert macro.get()[1] == pytest.approx((0.5 + 1.0) / 2)
    assert micro.get()[1] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # tp 2, fp 1, fn 1 pooled


def test_mcc_local_reset_keeps_global_counts():
    m = mx.metric.MCC(average='micro')
    m.update([mx.nd.array([1, 0, 1, 0])], [_onehot([1, 0, 0, 0])])  # tp 1, tn 2, fn 1
    m.reset_local()
    m.update([mx.nd.array([1, 0])], [_onehot([1, 0])])              # tp 1, tn 1
    assert m.get()[1] == pytest.approx(1.0)
    tp, tn, fp, fn = 2., 3., 0., 1.
    ref = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert m.get_global()[1] == pytest.approx(ref)
    assert m.global_num_inst == 6 and m.num_inst == 2


def test_pcc_matches_the_confusion_matrix_formula_and_grows():
    label = np.array([0, 0, 1, 1, 2, 2, 2, 1])
    pred = np.array([0, 1, 1, 1, 2, 0, 2, 2])
    m = mx.metric.create('pcc')
    m.update([mx.nd.array(label[:4])], [_onehot(pred[:4], 2)])  # only classes 0, 1 so far
    m.update([mx.nd.array(label[4:])], [_onehot(pred[4:], 3)])  # class 2 grows the matrix
    cm = np.zeros((3, 3))
    for p, t in zip(pred, label):
        cm[p, t] += 1
    n, x, y = cm.sum(), cm.sum(1), cm.sum(0)
    ref = (np.trace(cm) * n - x @ y) / math.sqrt((n * n - x @ x) * (n * n - y @ y))
    assert m.get()[1] == pytest.approx(ref)
    # binary case: equals MCC
    mcc = mx.metric.create('mcc')
    b = mx.metric.create('pcc')
    lab, pr = [mx.nd.array([1, 0, 1, 1, 0])], [_onehot([1, 0, 0, 1, 1])]
    mcc.update(lab, pr)
    b.update(lab, pr)
    assert b.get()[1] == pytest.approx(mcc.get()[1])
    assert math.isnan(mx.metric.PCC().get()[1])


@pytest.mark.parametrize('metric', ['acc', 'f1', 'pcc', 'mcc', 'nll_loss', ['acc', 'f1']])
def test_create_from_get_config_dict_and_json(metric):
    m = mx.metric.create(metric)
    cfg = m.get_config()
    for again in (mx.metric.create(cfg), mx.metric.create(json.dumps(cfg))):
        assert type(again) is type(m) and again.get_config() == cfg
    acc = mx.metric.create(json.dumps(mx.metric.Accuracy(axis=0, name='a0').get_config()))
    assert acc.axis == 0 and acc.name == 'a0'
    assert isinstance(mx.metric.create('["top_k_accuracy", {"top_k": 3}]'), mx.metric.TopKAccuracy)


def test_bad_metric_configs_name_the_problem():
    with pytest.raises(mx.base.GraphcError, match='JSON'):
        mx.metric.create('{"metric": ')
    with pytest.raises(mx.base.GraphcError, match='unknown metric'):
        mx.metric.create({'metric': 'nosuch'})


def test_torch_and_caffe_are_loss_metrics_by_name():
    for name in ('torch', 'caffe'):
        m = mx.metric.create(name)
        m.update(None, [mx.nd.array([1.0, 3.0])])
        assert m.get() == (name, 2.0) and isinstance(m, mx.metric.Loss)
