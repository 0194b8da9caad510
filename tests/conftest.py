"""Test-wide settings: the IR verifier after every pass, and the eager tests in both engine modes."""
import os
import sys

import pytest

# the test-side tools (the fuzzer, tools/fuzz.py; the ONNX checks) import as top-level modules: `import fuzz`
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools'))

os.environ.setdefault('GRAPHC_VERIFY_IR', '1')

# modules of eager (NDArray, autograd, Gluon) tests: each test runs with the naive and the lazy engine
BOTH_ENGINES = {'test_ndarray', 'test_autograd', 'test_gluon_blocks', 'test_gluon_layers', 'test_losses',
                'test_optimizer', 'test_data', 'test_examples'}


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__.split('.')[-1] in BOTH_ENGINES:
        metafunc.fixturenames.append('_engine')
        metafunc.parametrize('_engine', ['naive', 'lazy'], indirect=True)


@pytest.fixture
def _engine(request):
    from graphc import engine
    old = engine.set_engine(request.param)
    yield request.param
    engine.set_engine(old)

# compiled kernels go to a cache of the test run's own, not the user's ~/.cache
if 'GRAPHC_CACHE_DIR' not in os.environ:
    import tempfile
    os.environ['GRAPHC_CACHE_DIR'] = tempfile.mkdtemp(prefix='graphc-test-cache-')


@pytest.fixture
def cp(monkeypatch):
    """The cupy stand-in (tests/fake_cupy.py) with the host emulation as gc.gpu's device, fresh device state."""
    import fake_cupy
    from graphc import device
    from graphc.ndarray import ndarray as ndmod
    monkeypatch.setitem(sys.modules, 'cupy', fake_cupy)
    monkeypatch.setattr(device, 'make_device', fake_cupy.emu_device)
    for name, v in [('_devices', {}), ('_plans', {}), ('HOST_OPS', set()), ('SYNCED', set())]:
        monkeypatch.setattr(device, name, v)
    monkeypatch.setattr(ndmod, '_GPU_LIVE', False)  # restored after the test: other tests keep the plain path
    return fake_cupy
