"""Per-voxel part labels from VRML materials (``equivox.data.part_labels``): materials -> classes, the labelled
voxelizer's placement and overlap rule, and the registered ``kicad_part_segments`` set."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.data import (PART_CLASSES, DataError, material_class, parse_vrml, parse_vrml_shapes,
                          voxelize_labelled_shapes)


def box(x0, y0, z0, x1, y1, z1):
    """Vertices (8, 3) and triangles (12, 3) of a closed axis-aligned box."""
    v = np.array([(x, y, z) for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)], dtype=float)
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    f = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    return v, f


def vrml_shape(v, f, material: str, define: bool) -> str:
    """One KiCad-style Shape: geometry first, then the appearance using (``USE``) or defining (``DEF``) a material."""
    ref = f"DEF {material} Material {{ diffuseColor 0.5 0.5 0.5 }}" if define else f"USE {material}"
    return ("Shape { geometry IndexedFaceSet\n{ coordIndex [" + ",".join(f"{a},{b},{c},-1" for a, b, c in f)
            + "]\ncoord Coordinate { point [" + ",".join(f"{x} {y} {z}" for x, y, z in v) + "]\n}}\n"
            f"appearance Appearance{{material {ref} }}\n}}\n")


def chip_wrl() -> str:
    """A flat epoxy body [0, 8] x [0, 4] x [1, 3] with two pins [-2, 0] / [8, 10] x [1.5, 2.5] x [0, 2] whose inner
    ends sit inside the body; the materials are defined once in geometry-less shapes, as KiCad does."""
    head = ("#VRML V2.0 utf8\n# kicad StepUp\n"
            "Shape {\n appearance Appearance {material DEF PIN-01 Material {\n diffuseColor 0.8 0.8 0.8\n}}}\n"
            "Shape {\n appearance Appearance {material DEF IC-BODY-EPOXY-04 Material {\n}}}\n")
    return (head + vrml_shape(*box(0, 0, 1, 8, 4, 3), "IC-BODY-EPOXY-04", False)
            + vrml_shape(*box(-2, 1.5, 0, 1, 2.5, 2), "PIN-01", False)
            + vrml_shape(*box(7, 1.5, 0, 10, 2.5, 2), "PIN-01", False))


def test_materials_map_to_classes():
    assert PART_CLASSES == ("background", "body", "metal")
    for metal in ("PIN-01", "PIN-02", "MET-SILVER", "MET-ALUMINUM", "met-copper", "PIN"):
        assert material_class(metal) == 2, metal
    for body in ("IC-BODY-EPOXY-04", "PLASTIC-WHITE-01", "GLASS-13", "BOARD-GREEN-02", "IC-LABEL-01", "LED-RED",
                 "CAP-CERAMIC-05", "SPINNER", "METAL_FREE", ""):
        assert material_class(body) == 1, body


def test_parse_vrml_shapes_names_each_shapes_material():
    shapes = parse_vrml_shapes(chip_wrl())
    assert [m for m, _, _ in shapes] == ["IC-BODY-EPOXY-04", "PIN-01", "PIN-01"]
    assert all(f.shape == (12, 3) and v.shape == (8, 3) for _, v, f in shapes)
    v, f = parse_vrml(chip_wrl())  # the merged view is the same geometry, triangles offset per shape
    assert v.shape == (24, 3) and f.shape == (36, 3) and f[12:24].min() == 8
    defined = "#VRML V2.0 utf8\n" + vrml_shape(*box(0, 0, 0, 1, 1, 1), "MET-01", True)
    assert parse_vrml_shapes(defined)[0][0] == "MET-01"
    bare = "#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { coordIndex [0,1,2] coord Coordinate { point " \
           "[0 0 0,1 0 0,0 1 0] } } }"
    assert parse_vrml_shapes(bare)[0][0] == ""


def test_voxelize_labelled_shapes_places_classes_and_metal_wins():
    shapes = [(material_class(m), v, f) for m, v, f in parse_vrml_shapes(chip_wrl())]
    lab = voxelize_labelled_shapes(shapes, size=16)
    assert lab.dtype == np.uint8 and lab.shape == (16,) * 3
    # the part spans x in [-2, 10] = 12 units -> 14 voxels: 7/6 voxels per unit, origin at voxel 1
    occ = np.argwhere(lab > 0)
    assert occ[:, 0].min() == 1 and occ[:, 0].max() == 14
    metal = np.argwhere(lab == 2)
    assert metal[:, 0].min() == 1 and metal[:, 0].max() == 14  # the pins are the two ends along x
    centre = lab[6:10, :, :]
    assert (centre == 1).any() and not (centre == 2).any()  # between the pins: body only
    # a pin's inner end lies inside the body: metal wins there (x in [0, 1] -> voxels 3..4)
    assert (lab[3, :, :] == 2).any() and (lab[3, :, :] == 1).any()
    # body solid (filled), below it at the pins' foot only metal
    assert (lab[:, :, lab.shape[2] // 2] > 0).sum() > 20
    # class indices are checked; nothing to voxelize is an error
    with pytest.raises(DataError, match="classes must be in"):
        voxelize_labelled_shapes([(3, *box(0, 0, 0, 1, 1, 1))], size=8)
    with pytest.raises(DataError, match="no shapes"):
        voxelize_labelled_shapes([], size=8)


def test_labelled_voxelizer_commutes_with_a_quarter_turn():
    """Rotating the shapes by a quarter turn about w before labelling gives the labels turned on the grid
    (the mesh-level protocol's rule is consistent with grid rotations for box placement)."""
    import torch

    shapes = [(material_class(m), v, f) for m, v, f in parse_vrml_shapes(chip_wrl())]
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # (d, h) -> (-h, d)
    up = torch.from_numpy(voxelize_labelled_shapes(shapes, size=16))
    turned = voxelize_labelled_shapes(shapes, size=16, rotation=turn)
    assert np.array_equal(turned, torch.rot90(up, 1, dims=(0, 1)).numpy())
    assert not np.array_equal(turned, up.numpy())


def test_registered_kicad_part_segments():
    from equivox.data import get_dataset, load_kicad_part_segments

    spec = get_dataset("kicad_part_segments", "segmentation")
    test = spec.load_split("test")
    assert test["label_names"] == {0: "background", 1: "body", 2: "metal"}
    assert len(test["volumes"]) >= 800
    img, lab = test["volumes"][0]
    assert img.shape == lab.shape == (1, 16, 16, 16) and torch_equal_occupancy(img, lab)
    d = load_kicad_part_segments("test")
    counts = np.bincount(d["labels"].ravel(), minlength=3)
    meta = d["metadata"]
    assert counts.tolist() == [meta["counts"]["voxels_per_class"]["test"][c] for c in PART_CLASSES]
    assert (d["labels"] == 2).any(axis=(1, 2, 3)).mean() > 0.9  # nearly every part has metal
    # the kicad_parts selection and split: the same model paths in the same split
    from equivox.data import load_kicad_parts

    parts = load_kicad_parts("test")
    assert set(map(str, d["model_path"])) <= set(map(str, parts["model_path"]))
    assert "CC BY-SA 4.0" in meta["licence"]


def torch_equal_occupancy(img, lab) -> bool:
    return bool(((img > 0) == (lab > 0)).all())
