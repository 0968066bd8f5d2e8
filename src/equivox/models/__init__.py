"""One way to build a model and one way to load it.

* :mod:`.roles`: which network a run builds: a registry of model roles (``equivariant``, its parameter-matched plain
  twin ``baseline``, ``plain_compute``, ``monai``, ``canonicalized``, any registered model, user roles), each
  building a network for a task from a :class:`ModelRequest`; :func:`network_class` answers "classifier or
  U-Net" for a task. ``TrainConfig.arch``, the benchmark's ``Competitor.arch`` and the timing scripts name roles.
* :mod:`.specs`: how a model is recorded and rebuilt: :func:`spec_of` (the one spec getter),
  :func:`build_from_spec`, :func:`upgrade_spec`, :func:`checkpoint_spec` (spec or pickled architecture).
* :mod:`.loading`: :func:`load_model`, the loader of every model source (equivox checkpoint, pickled or TorchScript
  file, MONAI bundle folder).

This package sits above the networks (:mod:`equivox.nets`), parameter matching (:mod:`equivox.baselines`) and the
canonicalizer, and below training, the benchmark harness and the CLI, which build and load models through it.
"""
from .loading import load_bundle, load_model, model_from_checkpoint
from .roles import (ARCH_CHOICES, ROLES, TASKS, CanonicalizedRole, CustomRole, ModelRequest, ModelRole,
                    RegisteredRole, arch_names, get_role, is_arch, network_class, register_role, role_names,
                    unregister_role)
from .specs import (PICKLED_MODEL, SKELETON_KEY, SPEC_VERSION, build_canonicalized, build_from_spec, checkpoint_spec,
                    model_from_skeleton, model_skeleton, model_spec, pickled_spec, spec_of, upgrade_spec)

__all__ = ["load_model", "model_from_checkpoint", "load_bundle",
           "ARCH_CHOICES", "ROLES", "TASKS", "ModelRequest", "ModelRole", "CanonicalizedRole", "CustomRole",
           "RegisteredRole", "arch_names", "get_role", "is_arch", "network_class", "register_role", "role_names",
           "unregister_role",
           "SPEC_VERSION", "spec_of", "model_spec", "build_from_spec", "upgrade_spec", "build_canonicalized",
           "checkpoint_spec", "PICKLED_MODEL", "SKELETON_KEY", "pickled_spec", "model_skeleton",
           "model_from_skeleton"]
