"""Basic layers as MXNet Gluon 1.x: containers, Dense, Dropout, norms, Embedding, activations, lambdas."""
import warnings

import numpy as np

from ... import initializer as _init
from ... import nd
from ...base import GraphcError, as_dtype
from ..block import Block, HybridBlock


class Sequential(Block):
    """Blocks run one after another; a block returning a tuple passes its tail on as extra args."""

    def add(self, *blocks):
        for b in blocks:
            self.register_child(b)

    def forward(self, x, *args):
        for block in self._children.values():
            x = block(x, *args)
            args = ()
            if isinstance(x, (tuple, list)):
                x, args = x[0], tuple(x[1:])
        return (x,) + args if args else x

    def __getitem__(self, key):
        layers = list(self._children.values())[key]
        if not isinstance(layers, list):
            return layers
        net = type(self)(prefix=self._prefix)
        with net.name_scope():
            net.add(*layers)
        return net

    def __len__(self):
        return len(self._children)

    def hybridize(self, active=True, **kwargs):
        if self._children and all(isinstance(c, HybridBlock) for c in self._children.values()):
            warnings.warn(f"All children of this Sequential layer '{self.prefix}' are HybridBlocks. Consider using "
                          "HybridSequential for the best performance.", stacklevel=2)
        super().hybridize(active, **kwargs)


class HybridSequential(HybridBlock):
    """Sequential for HybridBlocks (hybridizes as a whole)."""
    add, forward, __getitem__, __len__ = Sequential.add, Sequential.forward, Sequential.__getitem__, Sequential.__len__


class Concatenate(Sequential):
    """Every child runs on the same input; their outputs are concatenated on `axis`."""

    def __init__(self, axis=-1, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self.axis = axis

    def forward(self, x):
        return nd.concat(*[block(x) for block in self._children.values()], dim=self.axis)


class HybridConcatenate(HybridSequential):
    """Concatenate for HybridBlocks."""

    def __init__(self, axis=-1, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self.axis = axis

    def hybrid_forward(self, F, x):
        return F.concat(*[block(x) for block in self._children.values()], dim=self.axis)

    forward = HybridBlock.forward


class Identity(HybridBlock):
    """Returns its input (a placeholder branch of a Concatenate, a skipped stage)."""

    def hybrid_forward(self, F, x):
        return x


class Activation(HybridBlock):
    """Activation(act_type) with act_type in relu, sigmoid, tanh, softrelu, softsign."""

    def __init__(self, activation, **kwargs):
        self._act_type = activation
        super().__init__(**kwargs)

    def _alias(self):
        return self._act_type

    def hybrid_forward(self, F, x):
        return F.Activation(x, act_type=self._act_type, name='fwd')

    def __repr__(self):
        return f"{self.__class__.__name__}({self._act_type})"


class Dense(HybridBlock):
    """y = activation(x @ weight.T + bias), weight of shape (units, in_units); with flatten=True the
    input is flattened to (batch, -1) first, otherwise the last axis is contracted."""

    def __init__(self, units, activation=None, use_bias=True, flatten=True, dtype='float32',
                 weight_initializer=None, bias_initializer='zeros', in_units=0, **kwargs):
        super().__init__(**kwargs)
        self._units, self._in_units, self._flatten = units, in_units, flatten
        with self.name_scope():
            self.weight = self.params.get('weight', shape=(units, in_units), init=weight_initializer, dtype=dtype,
                                          allow_deferred_init=True)
            self.bias = self.params.get('bias', shape=(units,), init=bias_initializer, dtype=dtype,
                                        allow_deferred_init=True) if use_bias else None
            self.act = Activation(activation, prefix=activation + '_') if activation is not None else None

    def infer_shape(self, x, *args):
        self.weight.shape = (self._units, int(np.prod(x.shape[1:])) if self._flatten else x.shape[-1])

    def hybrid_forward(self, F, x, weight, bias=None):
        args = (x, weight) if bias is None else (x, weight, bias)
        out = F.FullyConnected(*args, no_bias=bias is None, num_hidden=self._units, flatten=self._flatten, name='fwd')
        return self.act(out) if self.act is not None else out

    def __repr__(self):
        i, o = self.weight.shape[1], self.weight.shape[0]
        return f"{self.__class__.__name__}({i or None} -> {o}, {self.act if self.act is not None else 'linear'})"


class Dropout(HybridBlock):
    """Zero a fraction `rate` of the inputs (and rescale the rest) in training mode only."""

    def __init__(self, rate, axes=(), **kwargs):
        super().__init__(**kwargs)
        self._rate, self._axes = rate, tuple(axes)

    def hybrid_forward(self, F, x):
        return F.Dropout(x, p=self._rate, axes=self._axes, name='fwd') if self._rate > 0 else x

    def __repr__(self):
        return f"{self.__class__.__name__}(p = {self._rate}, axes={self._axes})"


class BatchNorm(HybridBlock):
    """Batch normalization over `axis`; running_mean/running_var are updated in training mode."""

    def __init__(self, axis=1, momentum=0.9, epsilon=1e-5, center=True, scale=True, use_global_stats=False,
                 beta_initializer='zeros', gamma_initializer='ones', running_mean_initializer='zeros',
                 running_variance_initializer='ones', in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self._kwargs = {'axis': axis, 'eps': epsilon, 'momentum': momentum, 'fix_gamma': not scale,
                        'use_global_stats': use_global_stats}
        self._axis = axis
        get = lambda name, req, init, diff=True: self.params.get(  # noqa: E731
            name, grad_req=req, shape=(in_channels,), init=init, allow_deferred_init=True, differentiable=diff)
        self.gamma = get('gamma', 'write' if scale else 'null', gamma_initializer, scale)
        self.beta = get('beta', 'write' if center else 'null', beta_initializer, center)
        self.running_mean = get('running_mean', 'null', running_mean_initializer, False)
        self.running_var = get('running_var', 'null', running_variance_initializer, False)

    def infer_shape(self, x, *args):
        if not -x.ndim <= self._axis < x.ndim:
            raise GraphcError(f"BatchNorm: axis {self._axis} is out of range for input of shape {x.shape}")
        c = x.shape[self._axis]
        for p in (self.gamma, self.beta, self.running_mean, self.running_var):
            p.shape = (c,)

    def cast(self, dtype):
        if as_dtype(dtype) == np.float16:  # as MXNet: statistics stay in float32 (bfloat16: cast, as MXNet)
            dtype = 'float32'
        super().cast(dtype)

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        return F.BatchNorm(x, gamma, beta, running_mean, running_var, name='fwd', **self._kwargs)

    def __repr__(self):
        c = self.gamma.shape[0]
        body = ', '.join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"{self.__class__.__name__}({body}, in_channels={c or None})"


class SyncBatchNorm(BatchNorm):
    """BatchNorm whose training statistics span every device of a data-parallel step (MXNet's
    gluon.contrib.nn.SyncBatchNorm; axis 1): the num_devices devices of this process (their forwards run
    with gluon.utils.parallel) and every MPI rank of a distributed run. With one device and one process it
    is BatchNorm. The synchronized statistics are computed eagerly (nn/sync_batchnorm.py); a hybridized
    block refuses to trace them, naming the layer."""

    def __init__(self, in_channels=0, num_devices=None, momentum=0.9, epsilon=1e-5, center=True, scale=True,
                 use_global_stats=False, beta_initializer='zeros', gamma_initializer='ones',
                 running_mean_initializer='zeros', running_variance_initializer='ones', **kwargs):
        super().__init__(1, momentum, epsilon, center, scale, use_global_stats, beta_initializer, gamma_initializer,
                         running_mean_initializer, running_variance_initializer, in_channels, **kwargs)
        self._num_devices = num_devices or 1

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        return self.batch_norm(F, x, gamma, beta, running_mean, running_var)

    def batch_norm(self, F, x, gamma, beta, running_mean, running_var):
        from . import sync_batchnorm as sync
        if self._kwargs['use_global_stats'] or sync.group_size(self._num_devices) == 1:
            return F.BatchNorm(x, gamma, beta, running_mean, running_var, name='fwd', **self._kwargs)
        from ...ndarray.ndarray import NDArray
        if not isinstance(x, NDArray):  # tracing
            from ...symbol.symbol import current_trace
            trace = current_trace()
            if trace is None or trace.training:
                raise GraphcError(f"SyncBatchNorm {self.name!r}: statistics that span "
                                  f"{sync.group_size(self._num_devices)} devices/ranks are computed eagerly and "
                                  f"cannot be traced; call hybridize(False) on the blocks that contain it")
            return F.BatchNorm(x, gamma, beta, running_mean, running_var, name='fwd', **self._kwargs)
        from ... import autograd
        if not autograd.is_training():
            return F.BatchNorm(x, gamma, beta, running_mean, running_var, name='fwd', **self._kwargs)
        return sync.sync_batch_norm(self, x, gamma, beta, running_mean, running_var)


def _norm_repr(block, kwargs):  # as MXNet: the kwargs in order, then in_channels (0 while deferred)
    body = ', '.join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{block.__class__.__name__}({body}, in_channels={block.gamma.shape[0]})"


class _ChannelNorm(HybridBlock):
    """gamma/beta of one size, learned unless scale/center is False (then fixed at their initial values)."""

    def __init__(self, kwargs, center, scale, beta_initializer, gamma_initializer, in_channels, **rest):
        super().__init__(**rest)
        self._kwargs = kwargs
        self.gamma = self.params.get('gamma', grad_req='write' if scale else 'null', shape=(in_channels,),
                                     init=gamma_initializer, allow_deferred_init=True)
        self.beta = self.params.get('beta', grad_req='write' if center else 'null', shape=(in_channels,),
                                    init=beta_initializer, allow_deferred_init=True)

    def _check_axis(self, x, axis):
        if not -x.ndim <= axis < x.ndim:
            raise GraphcError(f"{type(self).__name__}: axis {axis} is out of range for input of shape {x.shape}")
        return x.shape[axis]

    def __repr__(self):
        return _norm_repr(self, self._kwargs)


class LayerNorm(_ChannelNorm):
    """Layer normalization over `axis` (default the last), with gamma/beta of that axis' size."""

    def __init__(self, axis=-1, epsilon=1e-5, center=True, scale=True, beta_initializer='zeros',
                 gamma_initializer='ones', in_channels=0, **kwargs):
        super().__init__({'eps': epsilon, 'axis': axis, 'center': center, 'scale': scale}, center, scale,
                         beta_initializer, gamma_initializer, in_channels, **kwargs)
        self._axis, self._epsilon = axis, epsilon

    def infer_shape(self, x, *args):
        self.gamma.shape = self.beta.shape = (self._check_axis(x, self._axis),)

    def hybrid_forward(self, F, x, gamma, beta):
        return F.LayerNorm(x, gamma, beta, axis=self._axis, eps=self._epsilon, name='fwd')


class InstanceNorm(_ChannelNorm):
    """Each sample's each channel (on `axis`) normalized over the other axes; gamma/beta per channel.
    As MXNet, scale defaults to False (gamma stays 1)."""

    def __init__(self, axis=1, epsilon=1e-5, center=True, scale=False, beta_initializer='zeros',
                 gamma_initializer='ones', in_channels=0, **kwargs):
        super().__init__({'eps': epsilon, 'axis': axis, 'center': center, 'scale': scale}, center, scale,
                         beta_initializer, gamma_initializer, in_channels, **kwargs)
        self._axis, self._epsilon = axis, epsilon

    def infer_shape(self, x, *args):
        self.gamma.shape = self.beta.shape = (self._check_axis(x, self._axis),)

    def hybrid_forward(self, F, x, gamma, beta):
        if self._axis == 1:
            return F.InstanceNorm(x, gamma, beta, name='fwd', eps=self._epsilon)
        x = F.swapaxes(x, dim1=1, dim2=self._axis)
        return F.swapaxes(F.InstanceNorm(x, gamma, beta, name='fwd', eps=self._epsilon), dim1=1, dim2=self._axis)


class GroupNorm(_ChannelNorm):
    """Channels (axis 1) split into num_groups; each sample's group normalized, then scaled and shifted by
    the group's gamma/beta: as MXNet 1.9, they have shape (num_groups,) (MXNet 2 has one per channel)."""

    def __init__(self, num_groups=1, epsilon=1e-5, center=True, scale=True, beta_initializer='zeros',
                 gamma_initializer='ones', **kwargs):
        super().__init__({'eps': epsilon, 'num_groups': num_groups, 'center': center, 'scale': scale}, center,
                         scale, beta_initializer, gamma_initializer, num_groups, **kwargs)
        self._num_groups, self._epsilon = num_groups, epsilon

    def __repr__(self):
        return f"GroupNorm({', '.join(f'{k}={v!r}' for k, v in self._kwargs.items())})"

    def hybrid_forward(self, F, x, gamma, beta):
        return F.GroupNorm(x, gamma, beta, num_groups=self._num_groups, eps=self._epsilon, name='fwd')


class Embedding(HybridBlock):
    """Rows of a (input_dim, output_dim) table picked by integer indices."""

    def __init__(self, input_dim, output_dim, dtype='float32', weight_initializer=None, sparse_grad=False, **kwargs):
        super().__init__(**kwargs)
        self._kwargs = {'input_dim': input_dim, 'output_dim': output_dim, 'dtype': dtype, 'sparse_grad': sparse_grad}
        self.weight = self.params.get('weight', shape=(input_dim, output_dim), init=weight_initializer, dtype=dtype,
                                      allow_deferred_init=True, grad_stype='row_sparse' if sparse_grad else 'default')

    def hybrid_forward(self, F, x, weight):
        return F.Embedding(x, weight, name='fwd', **self._kwargs)

    def __repr__(self):
        k = self._kwargs
        return f"{self.__class__.__name__}({k['input_dim']} -> {k['output_dim']}, {np.dtype(k['dtype'])})"


class Flatten(HybridBlock):
    """(N, ...) -> (N, prod(...))."""

    def hybrid_forward(self, F, x):
        return F.Flatten(x)

    def __repr__(self):
        return self.__class__.__name__


class LeakyReLU(HybridBlock):
    """x if x > 0 else alpha * x."""

    def __init__(self, alpha, **kwargs):
        if alpha < 0:
            raise GraphcError(f"LeakyReLU: slope alpha must be >= 0, got {alpha}")
        super().__init__(**kwargs)
        self._alpha = alpha

    def hybrid_forward(self, F, x):
        return F.LeakyReLU(x, act_type='leaky', slope=self._alpha)

    def __repr__(self):
        return f"{self.__class__.__name__}({self._alpha})"


class PReLU(HybridBlock):
    """LeakyReLU with a learned slope per channel (in_channels=1: one shared slope)."""

    def __init__(self, alpha_initializer=_init.Constant(0.25), in_channels=1, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.alpha = self.params.get('alpha', shape=(in_channels,), init=alpha_initializer)

    def hybrid_forward(self, F, x, alpha):
        return F.LeakyReLU(x, alpha, act_type='prelu')


class ELU(HybridBlock):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self._alpha = alpha

    def hybrid_forward(self, F, x):
        return F.LeakyReLU(x, act_type='elu', slope=self._alpha)


class SELU(HybridBlock):
    def hybrid_forward(self, F, x):
        return F.LeakyReLU(x, act_type='selu')


class GELU(HybridBlock):
    def hybrid_forward(self, F, x):
        return F.LeakyReLU(x, act_type='gelu')


class Swish(HybridBlock):
    """x * sigmoid(beta * x)."""

    def __init__(self, beta=1.0, **kwargs):
        super().__init__(**kwargs)
        self._beta = beta

    def hybrid_forward(self, F, x):
        return x * F.sigmoid(x * self._beta)


def _resolve(function, where):
    if isinstance(function, str):
        f = getattr(nd, function, None)
        if f is None or not callable(f):
            raise GraphcError(f"{where}: graphc.nd has no function {function!r}")
        return f, function
    if not callable(function):
        raise GraphcError(f"{where}: expected a function or the name of an nd function, got {function!r}")
    return function, getattr(function, '__name__', repr(function))


class Lambda(Block):
    """Wrap a function (or the name of an nd function, e.g. 'tanh') as a Block."""

    def __init__(self, function, prefix=None):
        super().__init__(prefix=prefix)
        self._func, self._func_name = _resolve(function, 'Lambda')

    def forward(self, *args):
        return self._func(*args)

    def __repr__(self):
        return f"{self.__class__.__name__}({self._func_name})"


class HybridLambda(HybridBlock):
    """Wrap fn(F, x, *args) (or an nd function name, called as F.name(x, *args)) as a HybridBlock."""

    def __init__(self, function, prefix=None):
        super().__init__(prefix=prefix)
        if isinstance(function, str):
            _resolve(function, 'HybridLambda')
            self._func, self._func_name = (lambda F, *a, _n=function: getattr(F, _n)(*a)), function
        else:
            self._func, self._func_name = _resolve(function, 'HybridLambda')

    def hybrid_forward(self, F, x, *args):
        return self._func(F, x, *args)

    def __repr__(self):
        return f"{self.__class__.__name__}({self._func_name})"


__all__ = ['Sequential', 'HybridSequential', 'Activation', 'Dense', 'Dropout', 'BatchNorm', 'SyncBatchNorm',
           'LayerNorm', 'InstanceNorm', 'GroupNorm', 'Embedding', 'Flatten', 'LeakyReLU', 'PReLU', 'ELU', 'SELU',
           'GELU', 'Swish', 'Lambda', 'HybridLambda', 'Concatenate', 'HybridConcatenate', 'Identity']
