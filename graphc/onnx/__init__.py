"""ONNX: export any graphc graph (a hybridized block, a Symbol, an MXNet -symbol.json) to ONNX, and import ONNX
models back as a Symbol or a SymbolBlock.

Built on the `onnx` package (`pip install graphc[onnx]`), which is imported only inside these functions:
`import graphc` stays light. See docs/ONNX.md for the op table and the conventions translated.
"""
from .export import export_model, export_block, EXPORTERS, NOT_EXPORTABLE, DEFAULT_OPSET, MIN_OPSET  # noqa: F401
from .importer import import_model, import_to_gluon, IMPORTERS  # noqa: F401
