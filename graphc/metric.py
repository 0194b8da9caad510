"""MXNet's evaluation metrics (mx.metric, also gluon.metric): update(labels, preds) accumulates, get() answers
(name, value). Values are computed in NumPy on the host, as MXNet's are."""
import json
import math

import numpy

from .base import GraphcError, GraphcShapeError, GraphcTypeError

_REGISTRY = {}


def register(cls, *aliases):
    for n in (cls.__name__.lower(),) + aliases:
        _REGISTRY[n] = cls
    return cls


def alias(*names):
    return lambda cls: register(cls, *names)


def _host(x):
    return x.asnumpy() if hasattr(x, 'asnumpy') else numpy.asarray(x)


def check_label_shapes(labels, preds, wrap=False, shape=False):
    """labels and preds must be as many (shape=True: of the same shape); wrap: make single arrays lists."""
    if not shape:
        ls = len(labels) if isinstance(labels, (list, tuple)) else 1
        ps = len(preds) if isinstance(preds, (list, tuple)) else 1
    else:
        ls, ps = labels.shape, preds.shape
    if ls != ps:
        raise GraphcShapeError(f"Shape of labels {ls} does not match shape of predictions {ps}")
    if wrap:
        labels = labels if isinstance(labels, (list, tuple)) else [labels]
        preds = preds if isinstance(preds, (list, tuple)) else [preds]
    return labels, preds


class EvalMetric:
    """Base class: a running sum and count, local (since reset_local) and global (since reset)."""

    def __init__(self, name, output_names=None, label_names=None, **kwargs):
        self.name, self.output_names, self.label_names = str(name), output_names, label_names
        self._has_global_stats = kwargs.pop('has_global_stats', False)
        self._kwargs = kwargs
        self.reset()

    def __str__(self):
        return f"EvalMetric: {dict(self.get_name_value())}"

    def get_config(self):
        config = dict(self._kwargs)
        config.update({'metric': type(self).__name__, 'name': self.name, 'output_names': self.output_names,
                       'label_names': self.label_names})
        return config

    def update_dict(self, label, pred):
        """update() from dicts of named outputs and labels (output_names / label_names select them)."""
        preds = [pred[n] for n in self.output_names] if self.output_names is not None else list(pred.values())
        labels = [label[n] for n in self.label_names] if self.label_names is not None else list(label.values())
        self.update(labels, preds)

    def update(self, labels, preds):
        raise NotImplementedError

    def reset(self):
        self.num_inst, self.sum_metric = 0, 0.0
        self.global_num_inst, self.global_sum_metric = 0, 0.0

    def reset_local(self):
        self.num_inst, self.sum_metric = 0, 0.0

    def _add(self, value, n):
        self.sum_metric += value
        self.global_sum_metric += value
        self.num_inst += n
        self.global_num_inst += n

    def get(self):
        return self.name, (float('nan') if self.num_inst == 0 else self.sum_metric / self.num_inst)

    def get_global(self):
        if not self._has_global_stats:
            return self.get()
        return self.name, (float('nan') if self.global_num_inst == 0 else
                           self.global_sum_metric / self.global_num_inst)

    def get_name_value(self):
        name, value = self.get()
        name = name if isinstance(name, list) else [name]
        value = value if isinstance(value, list) else [value]
        return list(zip(name, value))

    def get_global_name_value(self):
        name, value = self.get_global()
        name = name if isinstance(name, list) else [name]
        value = value if isinstance(value, list) else [value]
        return list(zip(name, value))


@alias('composite')
class CompositeEvalMetric(EvalMetric):
    """Several metrics updated together; get() answers lists of names and values."""

    def __init__(self, metrics=None, name='composite', output_names=None, label_names=None):
        self.metrics = [create(m) for m in (metrics or [])]
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def add(self, metric):
        self.metrics.append(create(metric))

    def get_metric(self, index):
        try:
            return self.metrics[index]
        except IndexError:
            raise GraphcError(f"CompositeEvalMetric: metric index {index} is out of range (0 to "
                              f"{len(self.metrics) - 1})") from None

    def update_dict(self, labels, preds):
        for m in self.metrics:
            m.update_dict(labels, preds)

    def update(self, labels, preds):
        for m in self.metrics:
            m.update(labels, preds)

    def reset(self):
        for m in getattr(self, 'metrics', []):
            m.reset()

    def reset_local(self):
        for m in self.metrics:
            m.reset_local()

    def _collect(self, fn):
        names, values = [], []
        for m in self.metrics:
            n, v = fn(m)
            names += n if isinstance(n, list) else [n]
            values += v if isinstance(v, list) else [v]
        return names, values

    def get(self):
        return self._collect(lambda m: m.get())

    def get_global(self):
        return self._collect(lambda m: m.get_global())

    def get_config(self):
        config = super().get_config()
        config['metrics'] = [m.get_config() for m in self.metrics]
        return config


@alias('acc')
class Accuracy(EvalMetric):
    """Fraction of correct predictions; class scores are reduced by argmax over `axis` first."""

    def __init__(self, axis=1, name='accuracy', output_names=None, label_names=None):
        super().__init__(name, axis=axis, output_names=output_names, label_names=label_names, has_global_stats=True)
        self.axis = axis

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _host(label), _host(pred)
            if pred.shape != label.shape:
                pred = numpy.argmax(pred, axis=self.axis)
            pred, label = pred.astype('int32').ravel(), label.astype('int32').ravel()
            check_label_shapes(label, pred, shape=True)
            self._add(int((pred == label).sum()), len(pred))


@alias('top_k_accuracy', 'top_k_acc')
class TopKAccuracy(EvalMetric):
    """Fraction of samples whose label is among the top_k scores."""

    def __init__(self, top_k=1, name='top_k_accuracy', output_names=None, label_names=None):
        super().__init__(name, top_k=top_k, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.top_k = top_k
        if top_k <= 1:
            raise GraphcError("TopKAccuracy: use Accuracy for top_k <= 1")
        self.name += f'_{top_k}'

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _host(label).astype('int32'), _host(pred).astype('float32')
            if pred.ndim == 1:
                self._add(int((pred.astype('int32') == label.ravel()).sum()), pred.shape[0])
                continue
            if pred.ndim != 2:
                raise GraphcShapeError(f"TopKAccuracy: predictions must be 1-d or 2-d, got shape {pred.shape}")
            k = min(self.top_k, pred.shape[1])
            top = numpy.argpartition(pred, -k, axis=1)[:, -k:]
            self._add(int((top == label.reshape(-1, 1)).any(axis=1).sum()), pred.shape[0])


class _BinaryCounts:
    """True/false positives/negatives of binary predictions (class scores: argmax; else threshold 0.5), counted
    since the last reset_local() (local) and since the last reset() (global)."""

    def __init__(self):
        self.local, self.glob = numpy.zeros(4, numpy.int64), numpy.zeros(4, numpy.int64)  # tp, fp, fn, tn

    def update(self, label, pred):
        label, pred = _host(label), _host(pred)
        pred = numpy.argmax(pred, axis=1) if pred.ndim > 1 and pred.shape[-1] > 1 else (pred.ravel() > 0.5)
        label = label.astype('int32').ravel()
        if len(numpy.unique(label)) > 2 or label.min(initial=0) < 0 or label.max(initial=0) > 1:
            raise GraphcError(f"binary classification metric: labels must be 0 or 1, got {numpy.unique(label)}")
        pred = pred.astype('int32').ravel()
        check_label_shapes(label, pred, shape=True)
        c = [((pred == p) & (label == t)).sum() for p, t in ((1, 1), (1, 0), (0, 1), (0, 0))]
        self.local += c
        self.glob += c

    def reset_local(self):
        self.local[:] = 0

    def reset(self):
        self.local[:] = 0
        self.glob[:] = 0

    @staticmethod
    def fscore(c):
        tp, fp, fn, _ = (float(v) for v in c)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return 2 * p * r / (p + r) if p + r else 0.0

    @staticmethod
    def matthewscc(c):
        if not c.sum():
            return 0.0
        tp, fp, fn, tn = (float(v) for v in c)
        denom = 1.0
        for t in (tp + fp, tp + fn, tn + fp, tn + fn):  # a zero margin leaves its factor out, as MXNet does
            denom *= t if t else 1.0
        return (tp * tn - fp * fn) / math.sqrt(denom)


class _Binary(EvalMetric):
    """F1 and MCC: average='macro' averages the score of each update() call (all its arrays together);
    'micro' scores all samples since the reset together."""
    _score = None

    def __init__(self, name, average='macro', output_names=None, label_names=None):
        if average not in ('macro', 'micro'):
            raise GraphcError(f"{type(self).__name__}: average must be 'macro' or 'micro', got {average!r}")
        self.average = average
        self.metrics = _BinaryCounts()
        super().__init__(name, average=average, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            self.metrics.update(label, pred)
        score, m = getattr(_BinaryCounts, self._score), self.metrics
        if self.average == 'macro':
            self._add(score(m.local), 1)  # the counts start afresh each call, so local == global here
            m.reset()
        else:
            self.sum_metric, self.num_inst = score(m.local) * int(m.local.sum()), int(m.local.sum())
            self.global_sum_metric, self.global_num_inst = score(m.glob) * int(m.glob.sum()), int(m.glob.sum())

    def reset(self):
        super().reset()
        self.metrics = _BinaryCounts()

    def reset_local(self):
        super().reset_local()
        self.metrics.reset_local()


@alias('f1')
class F1(_Binary):
    """F1 score of binary predictions."""
    _score = 'fscore'

    def __init__(self, name='f1', output_names=None, label_names=None, average='macro'):
        super().__init__(name, average, output_names, label_names)


@alias('mcc')
class MCC(_Binary):
    """Matthews correlation coefficient of binary predictions."""
    _score = 'matthewscc'

    def __init__(self, name='mcc', output_names=None, label_names=None, average='macro'):
        super().__init__(name, average, output_names, label_names)


@alias('pcc')
class PCC(EvalMetric):
    """Multiclass Matthews correlation (Pearson correlation of the one-hot label and prediction) from a
    confusion matrix that grows with the largest class seen; class scores are reduced by argmax over axis 1."""

    def __init__(self, name='pcc', output_names=None, label_names=None, has_global_stats=True):
        self.k = 2
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=has_global_stats)

    @staticmethod
    def _mcc(cm):
        n, x, y = cm.sum(), cm.sum(axis=1), cm.sum(axis=0)
        cov_xx, cov_yy = numpy.sum(x * (n - x)), numpy.sum(y * (n - y))
        if cov_xx == 0 or cov_yy == 0:
            return float('nan')
        return float(numpy.sum(cm.diagonal() * n - x * y) / math.sqrt(cov_xx * cov_yy))

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _host(label).astype('int64').ravel(), _host(pred)
            pred = (numpy.argmax(pred, axis=1) if pred.ndim > 1 and pred.size != label.size else pred)
            pred = pred.astype('int64').ravel()
            check_label_shapes(label, pred, shape=True)
            if min(label.min(initial=0), pred.min(initial=0)) < 0:
                raise GraphcError("PCC: class indices must be >= 0")
            n = int(max(label.max(initial=0), pred.max(initial=0))) + 1
            if n > self.k:  # pad both matrices to the new class count
                pad = ((0, n - self.k), (0, n - self.k))
                self.lcm, self.gcm, self.k = numpy.pad(self.lcm, pad), numpy.pad(self.gcm, pad), n
            bcm = numpy.zeros((self.k, self.k), numpy.int64)
            numpy.add.at(bcm, (pred, label), 1)
            self.lcm += bcm
            self.gcm += bcm
        self.num_inst += 1
        self.global_num_inst += 1

    @property
    def sum_metric(self):
        return self._mcc(self.lcm) * self.num_inst

    @property
    def global_sum_metric(self):
        return self._mcc(self.gcm) * self.global_num_inst

    def reset(self):
        self.global_num_inst, self.gcm = 0, numpy.zeros((self.k, self.k), numpy.int64)
        self.reset_local()

    def reset_local(self):
        self.num_inst, self.lcm = 0, numpy.zeros((self.k, self.k), numpy.int64)


@alias('perplexity')
class Perplexity(EvalMetric):
    """exp(mean negative log-probability of the labels); ignore_label samples are left out."""

    def __init__(self, ignore_label, axis=-1, name='perplexity', output_names=None, label_names=None):
        super().__init__(name, ignore_label=ignore_label, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.ignore_label, self.axis = ignore_label, axis

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        loss, num = 0.0, 0
        for label, pred in zip(labels, preds):
            label, pred = _host(label), _host(pred)
            if label.size != pred.size // pred.shape[self.axis]:
                raise GraphcShapeError(f"Perplexity: shape mismatch: {label.shape} vs. {pred.shape}")
            label = label.astype('int64').reshape(-1)
            prob = numpy.moveaxis(pred, self.axis, -1).reshape(-1, pred.shape[self.axis])
            prob = prob[numpy.arange(label.size), numpy.clip(label, 0, prob.shape[1] - 1)]
            if self.ignore_label is not None:
                keep = label != self.ignore_label
                prob, num = prob[keep], num + int(keep.sum())
            else:
                num += label.size
            loss -= float(numpy.log(numpy.maximum(1e-10, prob)).sum())
        self._add(loss, num)

    def get(self):
        return self.name, (float('nan') if self.num_inst == 0 else math.exp(self.sum_metric / self.num_inst))

    def get_global(self):
        return self.name, (float('nan') if self.global_num_inst == 0 else
                           math.exp(self.global_sum_metric / self.global_num_inst))


def _as_2d(label, pred):
    label, pred = _host(label), _host(pred)
    if label.ndim == 1:
        label = label.reshape(label.shape[0], 1)
    if pred.ndim == 1:
        pred = pred.reshape(pred.shape[0], 1)
    return label, pred


class _Regression(EvalMetric):
    def __init__(self, name, output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _as_2d(label, pred)
            self._add(float(self._batch(label, pred)), 1)


@alias('mae')
class MAE(_Regression):
    """Mean absolute error (averaged per batch)."""

    def __init__(self, name='mae', output_names=None, label_names=None):
        super().__init__(name, output_names, label_names)

    @staticmethod
    def _batch(label, pred):
        return numpy.abs(label - pred).mean()


@alias('mse')
class MSE(_Regression):
    """Mean squared error (averaged per batch)."""

    def __init__(self, name='mse', output_names=None, label_names=None):
        super().__init__(name, output_names, label_names)

    @staticmethod
    def _batch(label, pred):
        return ((label - pred) ** 2.0).mean()


@alias('rmse')
class RMSE(_Regression):
    """Root mean squared error (averaged per batch)."""

    def __init__(self, name='rmse', output_names=None, label_names=None):
        super().__init__(name, output_names, label_names)

    @staticmethod
    def _batch(label, pred):
        return numpy.sqrt(((label - pred) ** 2.0).mean())


@alias('ce')
class CrossEntropy(EvalMetric):
    """Mean of -log(p[label] + eps) over the samples; preds are probabilities (batch, classes)."""

    def __init__(self, eps=1e-12, name='cross-entropy', output_names=None, label_names=None):
        super().__init__(name, eps=eps, output_names=output_names, label_names=label_names, has_global_stats=True)
        self.eps = eps

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _host(label).ravel(), _host(pred)
            if label.shape[0] != pred.shape[0]:
                raise GraphcShapeError(f"{type(self).__name__}: {label.shape[0]} labels for {pred.shape[0]} "
                                       "predictions")
            prob = pred[numpy.arange(label.shape[0]), numpy.int64(label)]
            self._add(float((-numpy.log(prob + self.eps)).sum()), label.shape[0])


@alias('nll_loss')
class NegativeLogLikelihood(CrossEntropy):
    """The same as CrossEntropy, named 'nll-loss'."""

    def __init__(self, eps=1e-12, name='nll-loss', output_names=None, label_names=None):
        super().__init__(eps, name, output_names, label_names)


@alias('pearsonr')
class PearsonCorrelation(EvalMetric):
    """Pearson correlation of predictions and labels: 'macro' averages it per update, 'micro' over all."""

    def __init__(self, name='pearsonr', output_names=None, label_names=None, average='macro'):
        self.average = average
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def reset(self):
        super().reset()
        self._sums = numpy.zeros(5)  # micro: n, sum(pred), sum(label), sum(pred^2), sum(label^2); and sum(pred*label)
        self._sxy = 0.0

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _host(label).ravel().astype(numpy.float64), _host(pred).ravel().astype(numpy.float64)
            check_label_shapes(label, pred, False, True)
            if self.average == 'macro':
                self._add(float(numpy.corrcoef(pred, label)[0, 1]), 1)
                continue
            self._sums += [label.size, pred.sum(), label.sum(), (pred ** 2).sum(), (label ** 2).sum()]
            self._sxy += float((pred * label).sum())
            n, sx, sy, sxx, syy = self._sums
            r = (n * self._sxy - sx * sy) / math.sqrt((n * sxx - sx ** 2) * (n * syy - sy ** 2))
            self.sum_metric = self.global_sum_metric = r
            self.num_inst = self.global_num_inst = 1


@alias('loss')
class Loss(EvalMetric):
    """Mean of the given loss values (labels are ignored)."""

    def __init__(self, name='loss', output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)

    def update(self, _, preds):
        preds = preds if isinstance(preds, (list, tuple)) else [preds]
        for pred in preds:
            p = _host(pred)
            self._add(float(p.sum()), p.size)


@alias('torch')
class Torch(Loss):
    """Loss under MXNet's name for losses computed by Torch modules."""

    def __init__(self, name='torch', output_names=None, label_names=None):
        super().__init__(name, output_names, label_names)


@alias('caffe')
class Caffe(Loss):
    """Loss under MXNet's name for losses computed by Caffe layers."""

    def __init__(self, name='caffe', output_names=None, label_names=None):
        super().__init__(name, output_names, label_names)


class CustomMetric(EvalMetric):
    """A metric from a function feval(label, pred) of NumPy arrays: a value, or (sum, count)."""

    def __init__(self, feval, name=None, allow_extra_outputs=False, output_names=None, label_names=None):
        if name is None:
            name = getattr(feval, '__name__', 'custom')
            if name.find('<') != -1:
                name = f'custom({name})'
        super().__init__(name, feval=feval, allow_extra_outputs=allow_extra_outputs,
                         output_names=output_names, label_names=label_names, has_global_stats=True)
        self._feval, self._allow_extra_outputs = feval, allow_extra_outputs

    def update(self, labels, preds):
        if not self._allow_extra_outputs:
            labels, preds = check_label_shapes(labels, preds, True)
        else:
            labels = labels if isinstance(labels, (list, tuple)) else [labels]
            preds = preds if isinstance(preds, (list, tuple)) else [preds]
        for pred, label in zip(preds, labels):
            r = self._feval(_host(label), _host(pred))
            if isinstance(r, tuple):
                self._add(r[0], r[1])
            else:
                self._add(r, 1)

    def get_config(self):
        raise GraphcError("CustomMetric cannot be serialized (it holds a Python function)")


def np(numpy_feval, name=None, allow_extra_outputs=False):
    """A CustomMetric from a function of NumPy arrays (MXNet's mx.metric.np)."""
    def feval(label, pred):
        return numpy_feval(label, pred)
    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)


def create(metric, *args, **kwargs):
    """A metric from a name ('acc', 'f1', 'ce', ...), a class instance, a function, or a list of them."""
    if callable(metric) and not isinstance(metric, (EvalMetric, type)):
        return CustomMetric(metric, *args, **kwargs)
    if isinstance(metric, EvalMetric):
        return metric
    if isinstance(metric, type) and issubclass(metric, EvalMetric):
        return metric(*args, **kwargs)
    if isinstance(metric, (list, tuple)):
        composite = CompositeEvalMetric()
        for m in metric:
            composite.add(create(m, *args, **kwargs))
        return composite
    if isinstance(metric, dict):  # a get_config() answer
        config = dict(metric)
        return create(config.pop('metric', None), *args, **config, **kwargs)
    if isinstance(metric, str) and metric.lstrip()[:1] in ('{', '['):  # get_config() as JSON
        try:
            config = json.loads(metric)
        except ValueError as e:
            raise GraphcError(f"metric: cannot parse the JSON config {metric!r}: {e}") from None
        if isinstance(config, list):  # MXNet's '["name", {kwargs}]' form
            if len(config) != 2 or not isinstance(config[1], dict):
                raise GraphcError(f"metric: a JSON list config must be [name, {{kwargs}}], got {metric!r}")
            return create(config[0], *args, **config[1], **kwargs)
        return create(config, *args, **kwargs)
    if isinstance(metric, str):
        cls = _REGISTRY.get(metric.lower())
        if cls is None:
            raise GraphcError(f"unknown metric {metric!r}; known: {', '.join(sorted(_REGISTRY))}")
        return cls(*args, **kwargs)
    raise GraphcTypeError(f"metric must be a name, an EvalMetric, a function or a list, got {type(metric).__name__}")


for _c in (Accuracy, TopKAccuracy, F1, MCC, PCC, Perplexity, MAE, MSE, RMSE, CrossEntropy, NegativeLogLikelihood,
           PearsonCorrelation, Loss, CompositeEvalMetric):
    register(_c)
