"""equivox.data.medical: the module users import the medical data tools from re-exports each name of its
medical_* modules (items, headers, checks, transforms, pipeline) as the same object, and equivox.data re-exports
them in turn."""
from __future__ import annotations

import equivox.data
from equivox.data import (medical, medical_checks, medical_headers, medical_items, medical_pipeline,
                          medical_transforms)


def test_every_public_name_is_the_object_of_its_own_module():
    homes = (medical_items, medical_headers, medical_checks, medical_transforms, medical_pipeline)
    for name in medical.__all__:
        owners = [m for m in homes if name in m.__all__]
        assert len(owners) == 1, (name, owners)
        assert getattr(medical, name) is getattr(owners[0], name), name


def test_the_data_package_re_exports_the_medical_tools():
    for name in ("validate_pair", "folder_pair_items", "decathlon_items", "segmentation_transforms",
                 "segmentation_dataset", "scan_images", "choose_intensity", "load_monai_checked"):
        assert getattr(equivox.data, name) is getattr(medical, name), name
