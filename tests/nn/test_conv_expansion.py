"""The filter expansion of equivox.nn.conv.EquivariantConv3d: per representation pair one batched product of the
weights with a precomputed basis matrix, which is the conv weight itself ("direct": one input field, or one-channel
output fields) or becomes it by one gather ("take"; "select" for blocks above TAKE_MAX_ENTRIES, and where
deterministic algorithms rule out take's backward). Every layout gives the filter of the full escnn basis, the gathers
give bit-identical filters, no permute/reshape/copy chain is left in a training step, layers of the same shape share
the tensors, pickles leave the large indices out, and layers pickled before this layout still load and compute.
FieldNormAct views its input (one view in, one out) and takes non-contiguous inputs too."""
from __future__ import annotations

import collections
import io

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from equivox.nn import EquivariantConv3d, FieldNormAct, FieldSpec
from equivox.nn import conv as conv_mod

IRREPS = "so3_irreps(irreps=2x0e+1x1o+1x2e, filter_lmax=2)"


def _spec(group, kind, n):
    return FieldSpec.scalar(group, n) if kind == "scalar" else FieldSpec.hidden(group, n)


def _reference_filter(conv: EquivariantConv3d) -> torch.Tensor:
    """The filter from the full escnn basis of every pair: ``F[x, o, y, i, s] = sum_b w[x, y, b] basis[b, o, i, s]``
    placed at the pair's channels (the expansion before the one-product layouts, written out)."""
    k3 = conv.kernel_size ** 3
    in_reps = {r.name: r for r in conv.in_spec.representations()}
    out_reps = {r.name: r for r in conv.out_spec.representations()}
    filt = torch.zeros(conv.out_channels, conv.in_channels, k3, dtype=torch.float64)
    for k, (a, b) in enumerate(conv._pairs):
        basis = conv_mod._pair_data(conv.in_spec.group, in_reps[a], out_reps[b], conv.kernel_size)["basis"]
        w = getattr(conv, f"weight_{k}").detach()
        block = torch.einsum("xyb,boiS->xoyiS", w.double(), basis.double())
        oi, ii = getattr(conv, f"out_index_{k}"), getattr(conv, f"in_index_{k}")
        filt[oi[:, None], ii[None, :]] += block.reshape(oi.numel(), ii.numel(), k3)
    return filt.reshape(conv.out_channels, conv.in_channels, *(conv.kernel_size,) * 3).float()


LAYERS = [("scalar", 1, "hidden", 3, 3, "direct"), ("hidden", 3, "scalar", 2, 3, "direct"),
          ("hidden", 2, "hidden", 3, 3, "take"), ("hidden", 3, "hidden", 2, 1, "take")]


@pytest.mark.parametrize("group", ["octa", "full_octa", "so3"])
@pytest.mark.parametrize("fin, nin, fout, nout, k, layout", LAYERS)
def test_each_layout_gives_the_filter_of_the_full_basis(group, fin, nin, fout, nout, k, layout, monkeypatch):
    torch.manual_seed(0)
    conv = EquivariantConv3d(_spec(group, fin, nin), _spec(group, fout, nout), k)
    assert conv._layouts == [layout]
    filt, _ = conv.expand_parameters()
    assert filt.shape == (conv.out_channels, conv.in_channels, k, k, k) and filt.is_contiguous()
    torch.testing.assert_close(filt, _reference_filter(conv), atol=1e-6, rtol=1e-5)
    if layout != "take":
        return
    # the other gathers read the same entries of the same product: bit-identical filters and gradients
    w = conv.weight_0
    g = torch.randn(filt.shape, generator=torch.Generator().manual_seed(1))
    (taken,) = torch.autograd.grad(conv.expand_parameters()[0], w, g)
    monkeypatch.setattr(conv_mod, "_take_allowed", lambda f: False)  # deterministic algorithms off the CPU
    fallback = conv.expand_parameters()[0]
    assert torch.equal(fallback, filt)
    monkeypatch.undo()
    monkeypatch.setattr(conv_mod, "TAKE_MAX_ENTRIES", 0)
    torch.manual_seed(0)
    selecting = EquivariantConv3d(_spec(group, fin, nin), _spec(group, fout, nout), k)
    assert selecting._layouts == ["select"] and selecting.index_0.numel() * nout == conv.index_0.numel()
    selecting.load_state_dict(conv.state_dict())
    selected = selecting.expand_parameters()[0]
    assert torch.equal(selected, filt)
    (grad,) = torch.autograd.grad(selected, selecting.weight_0, g)
    torch.testing.assert_close(grad, taken, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("group", ["octa", "so3"])
def test_mixed_field_types_place_every_pair_at_its_channels(group):
    torch.manual_seed(0)
    fields = FieldSpec.scalar(group, 1) + FieldSpec.hidden(group, 2) + FieldSpec.scalar(group, 1)
    conv = EquivariantConv3d(fields, FieldSpec.hidden(group, 2) + FieldSpec.scalar(group, 2), 3)
    assert len(conv._pairs) == 4 and not conv._single and set(conv._layouts) == {"direct", "take"}
    torch.testing.assert_close(conv.expand_parameters()[0], _reference_filter(conv), atol=1e-6, rtol=1e-5)


def test_scalar_outputs_use_the_bias_as_it_is():
    torch.manual_seed(0)
    conv = EquivariantConv3d(FieldSpec.hidden("octa", 2), FieldSpec.scalar("octa", 3), 3, bias=True)
    assert conv._bias_identity and conv.expand_parameters()[1] is conv.bias
    hidden = EquivariantConv3d(FieldSpec.hidden("octa", 2), FieldSpec.hidden("octa", 3), 3, bias=True)
    with torch.no_grad():
        hidden.bias.normal_()
    assert not hidden._bias_identity
    torch.testing.assert_close(hidden.expand_parameters()[1], hidden.bias_expansion @ hidden.bias)


# ------------------------------------------------------------------ what a step costs


def _aten_ops(fn) -> collections.Counter:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return collections.Counter({e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")})


@pytest.mark.parametrize("fin, nin, fout, nout, layout, budget", [("hidden", 2, "hidden", 3, "take", 24),
                                                                   ("scalar", 1, "hidden", 3, "direct", 16)])
def test_a_training_step_adds_one_product_and_at_most_one_gather(fin, nin, fout, nout, layout, budget):
    """The expansion is one ``bmm`` and (``take``) one gather: no permute / reshape / copy chain, no ``mm`` through
    ``matmul``; a training step of the layer calls at most ``budget`` aten operators more than ``nn.Conv3d``
    (torch 2.13, CPU: take 19, direct 13)."""
    torch.manual_seed(0)
    conv = EquivariantConv3d(_spec("octa", fin, nin), _spec("octa", fout, nout), 3, bias=False)
    assert conv._layouts == [layout]
    forward = _aten_ops(conv.expand_parameters)
    assert forward["aten::bmm"] == 1 and forward["aten::take"] == (layout == "take")
    for op in ("aten::permute", "aten::reshape", "aten::clone", "aten::copy_", "aten::contiguous", "aten::matmul",
               "aten::mm", "aten::index_select", "aten::index_put_", "aten::new_zeros", "aten::mv"):
        assert forward[op] == 0, op
    plain = torch.nn.Conv3d(conv.in_channels, conv.out_channels, 3, padding=1, bias=False)
    x = torch.randn(1, conv.in_channels, 6, 6, 6)

    def step(m):
        def run():
            m.zero_grad(set_to_none=True)
            m(x).sum().backward()
        run()
        return run

    ours, theirs = _aten_ops(step(conv)), _aten_ops(step(plain))
    assert sum(ours.values()) - sum(theirs.values()) <= budget, dict(ours - theirs)


def test_field_norm_act_views_its_input_once_in_and_once_out():
    norm = FieldNormAct("octa", 2, "batch", "prelu")
    plain = torch.nn.Sequential(torch.nn.BatchNorm3d(2), torch.nn.PReLU())
    x = torch.randn(2, 48, 4, 4, 4, requires_grad=True)
    ops = _aten_ops(lambda: norm(x))
    assert ops - _aten_ops(lambda: plain(x.view(2, 2, 96, 4, 4))) == collections.Counter({"aten::view": 1})
    # a non-contiguous input (channels_last) gives the same result
    y = norm(x)
    z = norm(x.detach().to(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(z, y.detach(), rtol=0, atol=0)


# ------------------------------------------------------------------ sharing, pickles


def test_layers_of_the_same_shape_share_matrix_and_index():
    a = EquivariantConv3d(FieldSpec.hidden("octa", 2), FieldSpec.hidden("octa", 3), 3)
    b = EquivariantConv3d(FieldSpec.hidden("octa", 2), FieldSpec.hidden("octa", 3), 3)
    assert a.basis_0.data_ptr() == b.basis_0.data_ptr() and a.index_0.data_ptr() == b.index_0.data_ptr()
    c = EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 2), 3)
    d = EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 5), 3)
    assert c.basis_0.data_ptr() == d.basis_0.data_ptr()  # one decompressed basis for the pair's direct layers


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return torch.load(io.BytesIO(buf.getvalue()), weights_only=False), len(buf.getvalue())


def test_pickles_leave_the_gather_index_out_and_rebuild_it():
    torch.manual_seed(0)
    conv = EquivariantConv3d(FieldSpec.hidden("octa", 6), FieldSpec.hidden("octa", 6), 3)
    x = torch.randn(1, conv.in_channels, 5, 5, 5)
    back, size = _roundtrip(conv)
    assert size < conv.index_0.numel() * conv.index_0.element_size() / 4
    assert torch.equal(back.index_0, conv.index_0) and back._layouts == conv._layouts
    assert torch.equal(back(x), conv(x))
    assert list(back.state_dict()) == list(conv.state_dict())
    assert conv.index_0 is not None  # pickling does not touch the original


@pytest.mark.parametrize("group, fin, fout", [("octa", "hidden", "hidden"), ("octa", "scalar", "hidden"),
                                              ("so3", "hidden", "hidden"), (IRREPS, "hidden", "hidden")])
def test_a_layer_pickled_before_the_one_product_layout_still_computes(group, fin, fout):
    """The state a layer was pickled with before (``basis_k``: the orbit-compressed or full basis, ``gather_k``: the
    orbit columns or None; no layouts, columns or indices) is upgraded on unpickling, from its own buffers."""
    torch.manual_seed(0)
    conv = EquivariantConv3d(_spec(group, fin, 2), _spec(group, fout, 2), 3, bias=True)
    with torch.no_grad():
        conv.bias.normal_()
    state = conv.__getstate__()
    for name in ("_layouts", "_pair_views", "_filter_shape", "_bias_identity", "_indices_dropped"):
        state.pop(name, None)
    buffers = {}
    in_reps = {r.name: r for r in conv.in_spec.representations()}
    out_reps = {r.name: r for r in conv.out_spec.representations()}
    for name, t in state["_buffers"].items():
        if name.startswith(("column_", "index_")):
            continue
        if name.startswith("basis_") and not name.startswith("basis_fingerprint_"):
            k = int(name.split("_")[1])
            a, b = conv._pairs[k]
            data = conv_mod._pair_data(conv.in_spec.group, in_reps[a], out_reps[b], conv.kernel_size)
            compressed = data["compressed"]
            basis = data["basis"]
            buffers[name] = basis.reshape(basis.shape[0], -1) if compressed is None else compressed[0]
            buffers[f"gather_{k}"] = None if compressed is None else compressed[1]
            continue
        buffers[name] = t
    state["_buffers"] = buffers
    state["_non_persistent_buffers_set"] = {n for n in buffers if not n.startswith(("basis_fingerprint_", "weight"))}
    old = EquivariantConv3d.__new__(EquivariantConv3d)
    old.__setstate__(state)
    assert old._layouts == conv._layouts and not any(n.startswith("gather_") for n in old._buffers)
    x = torch.randn(2, conv.in_channels, 5, 5, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(old(x), conv(x), rtol=1e-5, atol=1e-6)
    assert list(old.state_dict()) == list(conv.state_dict())
    again, _ = _roundtrip(old)
    assert torch.equal(again(x), old(x))
