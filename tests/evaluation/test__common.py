"""equivox.evaluation._common: the item formats evaluation reads (dicts, pairs, tensor pairs, map-style and
iterable datasets, DataLoader batches, MONAI MetaTensors) with clear errors, the default rotation set, eval mode
restored after use, and the equivariance check on the grid elements of the rotations."""
from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from equivox.evaluation import rotation_set
from equivox.evaluation._common import (as_items, check_equivariance_on, default_rotations, eval_mode, iterate_items,
                                        loader_batches, plain, split_item)


def test_metatensors_become_plain_tensors():
    m = MetaTensor(torch.ones(1, 2, 2, 2))
    assert type(plain(m)) is torch.Tensor and torch.equal(plain(m), torch.ones(1, 2, 2, 2))
    t = torch.zeros(2)
    assert plain(t) is t and plain(3) == 3


def test_items_are_dicts_or_pairs_and_errors_say_which():
    x, y = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)
    assert split_item({"image": x, "label": y, "id": "a"}, 0)[1] is y
    assert split_item((x, y, "extra"), 0)[0] is x
    with pytest.raises(ValueError, match=r"data item 3 is a dict without key\(s\) \['label'\]"):
        split_item({"image": x}, 3)
    with pytest.raises(ValueError, match="data item 4 is a Tensor"):
        split_item(x, 4)


def test_every_data_format_gives_the_same_items():
    images = torch.arange(3 * 8, dtype=torch.float32).reshape(3, 1, 2, 2, 2)
    labels = torch.tensor([0, 1, 0])
    pairs = [(images[i], labels[i]) for i in range(3)]
    dicts = [{"image": images[i], "label": labels[i]} for i in range(3)]
    loader = torch.utils.data.DataLoader(dicts, batch_size=2)
    for data in ((images, labels), pairs, dicts, iter(pairs), loader):
        got = list(iterate_items(data))
        assert len(got) == 3
        for (a, b), (x, y) in zip(got, pairs):
            assert torch.equal(torch.as_tensor(a), x) and int(b) == int(y)
    assert as_items((images, labels))[1] == 3 and as_items(iter(pairs))[1] is None
    with pytest.raises(ValueError, match="got 3 images but 2 labels"):
        as_items((images, labels[:2]))


def test_loader_batches_must_be_5d_with_one_label_per_image():
    bad = torch.utils.data.DataLoader([{"image": torch.zeros(2, 2, 2), "label": 0}] * 2, batch_size=2)
    with pytest.raises(ValueError, match=r"DataLoader batch 0: image must be \(B, C, D, H, W\)"):
        list(loader_batches(bad))


def test_default_rotations_follow_the_model_group_and_refuse_other_lists():
    class M(torch.nn.Module):
        group = "c4_axial"

    rots = default_rotations(M(), None)
    assert [r.name for r in rots] == [r.name for r in rotation_set("standard", group="c4_axial")]
    assert len([r for r in default_rotations(torch.nn.Identity(), None) if r.kind == "grid"]) == 24  # octa
    given = rotation_set("grid")[:3]
    assert default_rotations(M(), given) == given
    for bad in ([], ["identity"]):
        with pytest.raises(ValueError, match="non-empty list of equivox.evaluation.Rotation"):
            default_rotations(M(), bad)


def test_eval_mode_is_restored_after_the_block():
    model = torch.nn.Sequential(torch.nn.Dropout(0.5)).train()
    with eval_mode(model, "cpu") as m:
        assert m is model and not model.training and not torch.is_grad_enabled()
    assert model.training and torch.is_grad_enabled()


def test_equivariance_check_on_the_rotations_grid_elements(small_model):
    """Per element errors: about zero for an equivariant model, large for a trivial-group one; elements from the
    rotations given (identity and random ones ignored)."""
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    rots = rotation_set("standard", group="octa", n_random=1)[:6] + rotation_set("so3", n_random=1)[1:]
    worst, per = check_equivariance_on(small_model("unet", "octa"), x, rots)
    assert len(per) == 5 and worst < 1e-4
    worst_t, _ = check_equivariance_on(small_model("unet", "trivial"), x, rots)
    assert worst_t > 1e-2
