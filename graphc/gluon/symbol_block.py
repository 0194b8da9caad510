"""SymbolBlock: a block made from a graph (a Symbol), e.g. one loaded from MXNet's export files."""
import os
from collections import OrderedDict

from ..base import GraphcError, GraphcLoadError
from ..graph import Graph
from ..nd import update_moving_stats
from ..registry import cut
from ..ndarray.ndarray import invoke
from ..symbol.symbol import Symbol
from .block import HybridBlock


class _SparseParamError(GraphcError, AssertionError):
    """A row_sparse parameter in a SymbolBlock (MXNet raises AssertionError)."""


class SymbolBlock(HybridBlock):
    """SymbolBlock(outputs, inputs, params=None): runs the graph from `inputs` (Symbols or names) to
    `outputs`; every other graph variable becomes a Parameter. Hybridized from the start."""

    def __init__(self, outputs, inputs, params=None):
        super().__init__(prefix='', params=params)
        from .parameter import ParameterDict
        self._params = ParameterDict('', params)  # MXNet's: graph variables are looked up by their own names
        outputs = outputs if isinstance(outputs, Symbol) else _group(outputs)
        inputs = [inputs] if isinstance(inputs, (Symbol, str)) else list(inputs)
        self._graph = Graph(outputs._entries)
        by_name = {v.name: v for v in self._graph.inputs}
        self._input_vars = []
        for x in inputs:
            name = x if isinstance(x, str) else x.name
            if name not in by_name:
                from .parameter import _brief
                raise GraphcError(f"SymbolBlock: input {cut(name)} is not a variable of the graph; variables: "
                                  f"{_brief(sorted(by_name))}")
            self._input_vars.append(by_name[name])
        aux = self._graph.aux_vars()
        self._param_of = {}
        for v in self._graph.inputs:
            if v in self._input_vars or 'value' in v.extra:
                continue
            if v.extra.get('__storage_type__') == '1':  # MXNet asserts on it too
                raise _SparseParamError(f"SymbolBlock doesn't support Parameter {v.name!r} because its storage type "
                                        "is 'row_sparse'")
            shape = v.extra.get('__shape__') or (v.shapes[0] if v.shapes and v.shapes[0] else None)
            p = self.params.get(v.name, shape=shape, dtype=v.dtypes[0], allow_deferred_init=True,
                                grad_req='null' if v in aux else 'write')
            self._param_of[v] = p
        # MXNet 1.9: save_parameters names a SymbolBlock's parameters without their common prefix (the
        # characters all names share), so a nested SymbolBlock's file does not depend on the prefix it was made with
        names = list(self._params.keys())
        cut_at = len(os.path.commonprefix(names)) if names else 0
        self._reg_params = OrderedDict((k[cut_at:], p) for k, p in self._params.items())
        self._active = True
        self._cache, self._last_key = {}, None

    @staticmethod
    def imports(symbol_file, input_names, param_file=None, ctx=None, allow_missing=False, ignore_extra=False):
        """Load MXNet's (or graphc's) export: `-symbol.json` and, optionally, its `.params` (arg:/aux: names)."""
        from ..mxjson import load_json_file
        out = load_json_file(symbol_file)
        names = [input_names] if isinstance(input_names, str) else list(input_names)
        try:
            blk = SymbolBlock(out, names)
        except GraphcLoadError:
            raise
        except GraphcError as e:  # the file does not have the inputs asked for
            raise GraphcLoadError(f"{symbol_file}: {e}") from None
        if param_file is not None:
            try:
                blk.collect_params().load(param_file, ctx, allow_missing=allow_missing, ignore_extra=ignore_extra)
            except GraphcLoadError:
                raise
            except GraphcError as e:
                raise GraphcLoadError(str(e)) from None
        return blk

    def hybridize(self, active=True, **kwargs):
        super().hybridize(active, **kwargs)

    def infer_shape(self, *args):
        """Parameter shapes the graph leaves open (a Symbol built with sym.var weights), from the input shapes."""
        out = Symbol(self._graph.outputs)
        known = {v.name: tuple(a.shape) for v, a in zip(self._input_vars, args) if getattr(a, 'shape', None)}
        arg_shapes, _, aux_shapes = out.infer_shape(**known)
        shapes = dict(zip(out.list_arguments(), arg_shapes))
        shapes.update(zip(out.list_auxiliary_states(), aux_shapes))
        for v in self._graph.inputs:
            p = self._param_of.get(v)
            if p is not None and shapes.get(v.name) is not None:
                p.shape = shapes[v.name]
        unknown = [p.name for p in self._param_of.values() if p._data is None and (not p.shape or 0 in p.shape)]
        if unknown:
            raise GraphcError(f"the shapes of {', '.join(map(repr, unknown))} do not follow from the "
                              f"input shapes {sorted(known.items())}; give those variables a shape "
                              "(sym.var(name, shape=...)) or load their values first")

    def forward(self, *args):
        """Re-emit the graph on the inputs, op by op: eagerly on NDArrays, or into a trace on Symbols."""
        if len(args) != len(self._input_vars):
            raise GraphcError(f"SymbolBlock expects {len(self._input_vars)} inputs "
                              f"({', '.join(v.name for v in self._input_vars)}), got {len(args)}")
        own = list(self._param_of.values())
        if any(p._data is None and p._deferred_init for p in own):
            self.infer_shape(*args)
            for p in own:
                p._finish_deferred_init()
        self._check_cost(args)
        vals = {v: (a,) for v, a in zip(self._input_vars, args)}
        for n in self._graph.nodes:
            if n.is_var:
                if n in vals:
                    continue
                if 'value' in n.extra:
                    from ..ndarray.ndarray import NDArray
                    vals[n] = (NDArray(n.extra['value']),)
                else:
                    vals[n] = (self._param_of[n].data(),)
                continue
            ins = [vals[s][j] for s, j in n.inputs]
            attrs = {k: v for k, v in n.attrs.items() if k != '_train'}
            out = invoke(n.op, ins, attrs, name=n.name)
            vals[n] = tuple(out) if isinstance(out, list) else (out,)
            if n.op.name == 'BatchNorm':
                update_moving_stats(attrs, ins[3], ins[4], *out)
        outs = [vals[n][j] for n, j in self._graph.outputs]
        return outs[0] if len(outs) == 1 else outs


    def _check_cost(self, args):
        """The graph's planned memory for these input shapes within GRAPHC_MAX_GRAPH_BYTES, before any op runs
        (once per input shapes)."""
        from ..budget import check_graph_cost
        key = tuple((tuple(a.shape), str(a.dtype)) if getattr(a, 'shape', None) is not None else None for a in args)
        ok = self.__dict__.setdefault('_cost_ok', set())
        if key in ok:
            return
        shapes = {v: s[0] for v, s in zip(self._input_vars, key) if s is not None}
        dtypes = {v: s[1] for v, s in zip(self._input_vars, key) if s is not None}
        for v, p in self._param_of.items():
            if p.shape and v not in shapes:
                shapes[v] = tuple(None if not d else d for d in p.shape)
                dtypes[v] = p.dtype
        check_graph_cost(self._graph, shapes, where=f"SymbolBlock {self.name or '(imported)'}", strict=True,
                         dtypes=dtypes)
        if len(ok) < 64:
            ok.add(key)


def _group(outputs):
    from ..symbol.symbol import Group
    return Group(list(outputs))
