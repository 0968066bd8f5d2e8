"""Shared fixtures: small models built once per test process (and their escnn bases once per machine), and the
helpers several test files use (cube rotations written with torch.rot90 / torch.flip, e3nn's Wigner D checks,
trained-like norm statistics, file hashes, figure capture, ...), handed out as fixtures. Helpers of one test folder
only live in that folder's conftest.py (tests/benchmark, tests/cli, tests/data, tests/evaluation, tests/nnunet,
tests/training)."""
from __future__ import annotations

import functools
import os

import pytest
import torch

SMALL = dict(channels=(2, 2), strides=(2,))

# full_ico (120-dim regular fields) needs a 1.9 GB kernel basis and ~8 minutes to build it cold on 2 cores: its
# model tests run only on request. Its group data and grid elements are tested always (tests/groups/test_registry.py).
LARGE_GROUPS_ON = os.environ.get("EQUIVOX_TEST_FULL_ICO") == "1"

# `make test` runs one pytest-xdist worker per core: more than one torch thread per worker oversubscribes the
# CPU (tiny convs then run ~100x slower while the other worker is busy).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@functools.lru_cache(maxsize=None)
def _small_model(kind: str, group: str, seed: int = 0):
    from equivox.nets import EquivariantUNet, InvariantClassifier

    if group == "full_ico" and not LARGE_GROUPS_ON:
        pytest.skip("full_ico models build a 1.9 GB basis (~8 min cold): set EQUIVOX_TEST_FULL_ICO=1 to run")

    torch.manual_seed(seed)
    cls = EquivariantUNet if kind == "unet" else InvariantClassifier
    return cls(3, 1, 3, group=group, **SMALL)


@pytest.fixture(scope="session")
def small_model():
    """``small_model(kind, group, seed=0)`` -> a cached tiny U-Net (``"unet"``) or classifier (``"clf"``).

    Tests must not modify the returned model in place (use ``copy.deepcopy``)."""
    return _small_model


@pytest.fixture
def cube_input():
    """A fixed random input (2, 1, 8, 8, 8)."""
    return torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(7))


@pytest.fixture
def fork_child():
    """``fork_child(child) -> pid``: run ``child()`` in a forked process (equivox already imported: no start-up
    cost), one torch thread; the child exits 0 when ``child()`` returns, 1 when it raises."""

    def run(child) -> int:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                torch.set_num_threads(1)
                child()
                code = 0
            finally:
                os._exit(code)
        return pid

    return run


# ------------------------------------------------------------------------------------ helpers shared by test files
# Plain helper functions are handed out by fixtures: with --import-mode=importlib a test file cannot import another
# test module (or this one) by name.


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: tiny convolutions run ~100x faster single-threaded on a busy 2-core
    machine (no thread oversubscription). Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _file_hashes(folder) -> dict:
    import hashlib
    from pathlib import Path

    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def file_hashes():
    """``file_hashes(folder) -> {path: sha256}`` of every file below ``folder``: compare before and after a call to
    show that it wrote nothing into (or changed nothing in) a user's folder."""
    return _file_hashes


def _trained(model, seed: int = 0, perturb: str = "norm", copy: bool = True):
    import copy as copy_module

    if copy:
        model = copy_module.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    spec = getattr(model, "in_spec", None)
    in_size = spec.size if spec is not None else getattr(model, "in_channels", 1)
    with torch.no_grad():
        if perturb == "norm":
            for m in model.modules():
                if isinstance(m, (torch.nn.BatchNorm3d, torch.nn.InstanceNorm3d)) and m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.3)
        elif perturb == "all":
            for p in model.parameters():
                p.add_(torch.rand(p.shape, generator=g) * 0.2)
        elif perturb is not None:
            raise ValueError(f"perturb must be 'norm', 'all' or None, got {perturb!r}")
        model.train()(torch.randn(2, in_size, 8, 8, 8, generator=g) * 2 + 1)
    return model.eval()


@pytest.fixture
def trained():
    """``trained(model, seed=0, perturb="norm", copy=True)`` -> the model (a deep copy unless ``copy=False``) as
    after training, in eval mode: running statistics from one train-mode forward of a (2, C, 8, 8, 8) input with
    mean 1 and std 2, and affine norm weights drawn at random (``perturb="norm"``) or every parameter shifted by
    U(0, 0.2) (``perturb="all"``). Eval mode then really uses statistics other than the initial ones."""
    return _trained


def _cube_rotation_ops():
    """The 24 rotations of a (B, C, S, S, S) tensor as compositions of torch.rot90, deduplicated on a probe."""
    probe = torch.arange(27.0).reshape(1, 1, 3, 3, 3)
    faces = [lambda t: t, lambda t: torch.rot90(t, 1, (2, 3)), lambda t: torch.rot90(t, 2, (2, 3)),
             lambda t: torch.rot90(t, 3, (2, 3)), lambda t: torch.rot90(t, 1, (2, 4)),
             lambda t: torch.rot90(t, 3, (2, 4))]
    out, seen = [], set()
    for face in faces:
        for k in range(4):
            f = (lambda face, k: lambda t: torch.rot90(face(t), k, (3, 4)))(face, k)
            key = tuple(f(probe).flatten().tolist())
            if key not in seen:
                seen.add(key)
                out.append(f)
    assert len(out) == 24
    return out


def _cube_symmetry_ops():
    rots = _cube_rotation_ops()
    return [(r, False) for r in rots] + [((lambda r: lambda t: r(torch.flip(t, (2,))))(r), True) for r in rots]


@pytest.fixture
def cube_rotation_ops():
    """The 24 rotations of the cube as functions of a (B, C, S, S, S) tensor, written with torch.rot90 (never
    equivox's own group actions); the first is the identity."""
    return _cube_rotation_ops()


@pytest.fixture
def cube_symmetry_ops():
    """The 48 symmetries of the cube as ``(op, improper)``: the 24 rotations (``improper`` False), then each of them
    after a flip of the D axis (``improper`` True). Written with torch.rot90 / torch.flip."""
    return _cube_symmetry_ops()


def _matrix_of(op) -> torch.Tensor:
    """M with op(f)(p) = f(M^-1 p) about the grid centre, read off from coordinate maps (float64)."""
    n = 5
    c = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    coords = torch.stack(torch.meshgrid(c, c, c, indexing="ij"))  # (3, n, n, n): c_a(p) = p_a
    moved = op(coords[None])[0].reshape(3, -1)  # M^-1 p at every p
    m_inv = torch.linalg.lstsq(coords.reshape(3, -1).T, moved.T).solution.T
    return torch.linalg.inv(m_inv).round()


@pytest.fixture
def matrix_of():
    """``matrix_of(op) -> M`` (3x3, float64, in (d, h, w)): the rotation a voxel op (torch.rot90 / flip on a
    (B, C, D, H, W) tensor) performs, read off from coordinate maps: op(f)(p) = f(M^-1 p) about the grid centre."""
    return _matrix_of


@functools.lru_cache(maxsize=None)
def _cube_ops_with_matrices(reflections: bool):
    """[(op, M)]: the 24 cube rotations (48 with the inversion composed) and their matrices."""
    ops = _cube_rotation_ops()
    if reflections:
        ops = ops + [(lambda r: lambda t: r(t).flip(2, 3, 4))(r) for r in ops]
    return [(op, _matrix_of(op)) for op in ops]


@functools.lru_cache(maxsize=None)
def _wigner(irreps: str, m: tuple) -> torch.Tensor:
    from e3nn import o3

    return o3.Irreps(irreps).D_from_matrix(torch.tensor(m, dtype=torch.float64).reshape(3, 3)).float()


def _act_on(irreps, op, m, x):
    """The element on features ``x`` of ``irreps``: voxels moved by ``op``, channels by e3nn's Wigner D of ``m``."""
    from e3nn import o3

    d = _wigner(str(o3.Irreps(irreps)), tuple(m.flatten().tolist())).to(x.dtype)
    return torch.einsum("ij,bj...->bi...", d, op(x))


def _e3nn_equivariance_error(f, x, in_irreps, out_irreps, group, invariant=False, every=1):
    """max over the cube elements (every ``every``-th) of |f(g x) - g f(x)| / max |f(x)|."""
    ref = f(x)
    scale = ref.abs().max()
    err = 0.0
    for op, m in _cube_ops_with_matrices(str(group).startswith("o3"))[::every]:
        y = f(_act_on(in_irreps, op, m, x))
        target = ref if invariant else _act_on(out_irreps, op, m, ref)
        err = max(err, float((y - target).abs().max() / scale))
    return err


@pytest.fixture
def cube_ops_with_matrices():
    """``cube_ops_with_matrices(reflections) -> [(op, M)]``: the 24 cube rotations written with torch.rot90 (then,
    with ``reflections``, each composed with the inversion ``flip(2, 3, 4)``: 48) and their matrices."""
    return _cube_ops_with_matrices


@pytest.fixture
def e3nn_equivariance_error():
    """``e3nn_equivariance_error(f, x, in_irreps, out_irreps, group, invariant=False, every=1)``: the largest
    relative error |f(g x) - g f(x)| / max |f(x)| over the cube rotations (and the inversion for o3 groups), the
    element acting on voxels by torch.rot90 / flip and on channels by ``e3nn.o3.Irreps.D_from_matrix`` with e3nn's
    (x, y, z) = the tensor axes (D, H, W); ``invariant``: compare with f(x) itself."""
    return _e3nn_equivariance_error


#: one hidden field of both irreps groups (so3_irreps, o3_irreps), written out: 2 scalars, 2 gates, a vector, an l=2
IRREPS_FIELD = "2x0e+2x0e+1x1o+1x2e"


@pytest.fixture
def irreps_hidden():
    """``irreps_hidden(n) -> o3.Irreps`` of ``n`` hidden fields of so3_irreps / o3_irreps (``2x0e+2x0e+1x1o+1x2e``
    each)."""
    from e3nn import o3

    return lambda n: o3.Irreps("+".join([IRREPS_FIELD] * n))


@pytest.fixture
def saved_figures(monkeypatch):
    """The matplotlib figures equivox.evaluation.plots saves, in order (the PNGs are still written)."""
    from equivox.evaluation import plots

    saved = []
    real = plots._save

    def keep(fig, path, rect=None):
        saved.append(fig)
        return real(fig, path, rect)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1024


@pytest.fixture
def assert_png():
    """``assert_png(path)``: the file is a PNG image of more than 1 KiB."""
    return _assert_png


def _script_save_and_compare(net, *inputs, rtol=1e-4, atol=1e-5, tmp_path):
    """As MONAI's ``tests.utils.test_script_save``: convert_to_torchscript(verify=True) + reload + compare."""
    from monai.networks.utils import convert_to_torchscript

    path = os.path.join(tmp_path, "model.ts")
    convert_to_torchscript(net, filename_or_obj=path, verify=True, inputs=inputs, device=torch.device("cpu"),
                           rtol=rtol, atol=atol)
    loaded = torch.jit.load(path)
    with torch.no_grad():
        for a, b in zip([net(*inputs)], [loaded(*inputs)]):
            torch.testing.assert_close(b, a, rtol=rtol, atol=atol)
    return loaded


@pytest.fixture
def script_save_and_compare():
    """``script_save_and_compare(net, *inputs, rtol=1e-4, atol=1e-5, tmp_path=...) -> loaded``: MONAI's
    convert_to_torchscript with verification, saved, reloaded and compared with ``net`` on ``inputs``."""
    return _script_save_and_compare


def _non_identity_element(group: str):
    from equivox.groups import get_group

    els = [e for e in get_group(group).grid_elements if not torch.equal(
        torch.as_tensor(e.matrix, dtype=torch.float64), torch.eye(3, dtype=torch.float64))]
    return els[len(els) // 2] if els else None


@pytest.fixture
def non_identity_element():
    """``non_identity_element(group)``: a non-identity grid-exact element of ``group`` (None for the trivial
    group), for equivox.testing's checkers."""
    return _non_identity_element


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Reset equivox's warn-once memory so this test sees its own cache warnings."""
    from equivox import cache

    monkeypatch.setattr(cache, "_warned", set())


@pytest.fixture
def fresh_cache_state(monkeypatch, fresh_warnings):
    """Forget what this process read from the shipped folder (``equivox/_bases``) and which warnings it gave
    (restored after); shipped entries and the cache are switched on."""
    from equivox import cache

    monkeypatch.setattr(cache, "_shipped_state", {})
    monkeypatch.delenv("EQUIVOX_NO_SHIPPED", raising=False)
    monkeypatch.delenv("EQUIVOX_NO_CACHE", raising=False)


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch, fresh_cache_state):
    """A writable copy of the shipped folder that equivox reads instead of the real one."""
    import shutil

    from equivox import cache

    dst = tmp_path / "_bases"
    shutil.copytree(cache.shipped_dir(), dst)
    monkeypatch.setattr(cache, "shipped_dir", lambda: dst)
    return dst


@pytest.fixture
def last_error_line(capsys):
    """``last_error_line() -> str``: the last line the code under test wrote to stderr (captured so far), after
    checking that no traceback was printed."""

    def read() -> str:
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return err.strip().splitlines()[-1]

    return read


def _rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.fixture
def rel_error():
    """``rel_error(a, b) -> float``: max |a - b| / max |b| (b: the reference)."""
    return _rel_error


def _small_plain_classifier():
    from torch import nn

    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                         nn.Linear(4, 3))


@pytest.fixture
def small_plain_classifier():
    """``small_plain_classifier()`` -> a new plain torch classifier (conv, ReLU, global average pool, linear) of
    1-channel volumes into 3 classes: invariant to nothing but its pooling (seed torch before calling)."""
    return _small_plain_classifier


class _CountingBackend:
    """``torch.compile`` backend that counts the FX graphs it receives, then runs them with ``aot_eager`` (dynamo +
    AOTAutograd, no code generation): one graph per model means no graph breaks."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        from torch._dynamo import lookup_backend

        self.graphs += 1
        return lookup_backend("aot_eager")(gm, example_inputs)


@pytest.fixture
def counting_backend():
    """A fresh graph-counting ``torch.compile`` backend; dynamo's caches reset before and after."""
    torch._dynamo.reset()
    yield _CountingBackend()
    torch._dynamo.reset()
