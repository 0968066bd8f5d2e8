"""``torch.compile`` of every equivox network: no graph breaks, and the compiled forward equals the eager one.

Compiled with ``fullgraph=True`` (any graph break raises) through a counting backend that delegates to
``"aot_eager"`` (dynamo + AOTAutograd, forward and backward graphs, no code generation; one graph per model =
no graph breaks): inductor's C++ compilation takes minutes on the 2-core CI machines, and
``benchmarks/gpu_suite.sh`` compiles with inductor on CUDA (graph breaks counted with ``torch._dynamo.explain``).
"""
import pytest
import torch

GROUP = "octa"


def _make(name):
    import equivox.nets as N

    torch.manual_seed(0)
    small = dict(channels=(2, 2), strides=(2,), group=GROUP)
    if name == "EquivariantUNet":
        return N.EquivariantUNet(3, 1, 2, **small)
    if name == "InvariantClassifier":
        return N.InvariantClassifier(3, 1, 3, hidden_features=(8,), **small)
    if name == "EquivariantEncoder":
        return N.EquivariantEncoder(3, 1, **small)
    if name == "EquivariantMonaiUNet":
        return N.EquivariantMonaiUNet(3, 1, 2, num_res_units=1, **small)
    raise KeyError(name)


NETS = ["EquivariantUNet", "InvariantClassifier", "EquivariantEncoder", "EquivariantMonaiUNet"]


def _flat(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


@pytest.mark.parametrize("name", NETS)
def test_compiled_forward_equals_eager_without_graph_breaks(name, counting_backend):
    model = _make(name).eval()
    x = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    backend = counting_backend
    with torch.no_grad():
        eager = _flat(model(x))
        compiled = _flat(torch.compile(model, backend=backend, fullgraph=True)(x))
    assert backend.graphs == 1  # one graph: no graph breaks (fullgraph=True would raise on one, too)
    assert len(eager) == len(compiled)
    for a, b in zip(eager, compiled):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), float((a - b).abs().max())


def test_compiled_training_step_matches_eager(counting_backend):
    """Forward and backward of the U-Net in training mode (batch statistics) through AOTAutograd."""
    eager_model, comp_model = _make("EquivariantUNet").train(), _make("EquivariantUNet").train()
    comp_model.load_state_dict(eager_model.state_dict())
    backend = counting_backend
    compiled = torch.compile(comp_model, backend=backend, fullgraph=True)
    x = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(2))
    ya, yb = eager_model(x), compiled(x)
    assert backend.graphs == 1
    assert torch.allclose(ya, yb, atol=1e-5, rtol=1e-4)
    ya.square().mean().backward()
    yb.square().mean().backward()
    for (n, pa), (_, pb) in zip(eager_model.named_parameters(), comp_model.named_parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-5, rtol=1e-3), n
