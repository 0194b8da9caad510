"""graph -> graph passes (autodiff, simplification, fusion, memory planning)."""
