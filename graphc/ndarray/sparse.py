"""mx.nd.sparse: MXNet's sparse storage (CSR, row_sparse) is out of scope for graphc; every constructor says so."""
from ..base import GraphcNotSupportedError


def _unsupported(name):
    def f(*args, **kwargs):
        raise GraphcNotSupportedError(f"mx.nd.sparse.{name}: sparse storage is not supported by graphc "
                                      "(arrays are dense)")
    f.__name__ = name
    return f


csr_matrix, row_sparse_array, zeros, empty, array = (_unsupported(n) for n in
                                                     ('csr_matrix', 'row_sparse_array', 'zeros', 'empty', 'array'))


class CSRNDArray:
    def __init__(self, *args, **kwargs):
        _unsupported('CSRNDArray')()


class RowSparseNDArray:
    def __init__(self, *args, **kwargs):
        _unsupported('RowSparseNDArray')()
