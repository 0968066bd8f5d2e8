"""Canonicalization: any model, made exactly invariant (classification) or equivariant (segmentation) under the
grid-exact elements of a group, by running it on a canonical pose of its input.

A :class:`~equivox.canonicalization.GroupScorer` ``s`` picks, for an input ``x``, the element
``h(x) = argmax s(x)``; because the scores permute with the input, ``h(g.x) = g h(x)``. The wrapped model ``f`` runs on
``h(x)^-1 . x``, which is the same volume for ``x`` and every ``g.x``:

* classification: ``f(h^-1 . x)``: exactly invariant;
* segmentation: ``h . f(h^-1 . x)``, classes permuted by the model's class swaps when ``h`` is improper: exactly
  equivariant (label-permuting for left/right classes).

Grid elements are voxel permutations (``permute`` + ``flip``): nothing is resampled. ``f`` is any module on
``(B, C, D, H, W)``: an equivox network, MONAI's ``UNet``, nnU-Net's network or a user's trained model, untouched.
"""

from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..core import ExportError
from ..groups import get_group, grid_elements_of_name, move_voxels
from ..nn.canonical import CanonicalPose
from ..nn.fields import FieldSpec
from ..nn.label_swap import class_permutation
from ..nn.module import EquivariantModule, output_class_permutation, wrapped_channels
from .scorer import GroupScorer

__all__ = ["Canonicalized", "canonicalize", "confidence_scores", "MODES", "TASKS", "SCORERS"]

MODES = ("hard", "frame", "soft")
TASKS = ("classify", "segment")
#: how elements are scored: a trained :class:`GroupScorer` (``"network"``), the wrapped model's own confidence on
#: each moved copy (``"confidence"``: adaptive canonicalization, no training, ``n_elements`` forward passes), or a
#: small head fitted to read "upright" from the model's output on each moved copy (``"calibrated"``:
#: :func:`~equivox.canonicalization.fit_upright_head`, ``n_elements`` forward passes)
SCORERS = ("network", "confidence", "calibrated")


#: apply a grid element given as data (``GridElement.axes_and_flips``) to the spatial axes: the one voxel action
_move = move_voxels


class Canonicalized(EquivariantModule):
    """``model`` behind an exactly equivariant canonicalizer over the grid-exact elements of ``scorer.group``.

    Args:
        model: any ``nn.Module`` on ``(B, C, D, H, W)``: logits ``(B, K)`` (``task="classify"``) or
            ``(B, K, D', H', W')`` on the input grid (``task="segment"``).
        scorer: the canonicalizer (:class:`GroupScorer`), scoring every grid-exact element; or a group name: the
            model's own confidence on every moved copy scores the elements (:func:`confidence_scores`; nothing to
            fit, ``n_elements`` forward passes).
        task: ``"classify"`` or ``"segment"``.
        mode: ``"hard"`` (default): the top-scoring element, one forward of ``model`` per item; elements tied
            with it (to ``tie_tolerance``, relative: symmetric inputs) are averaged, so the output stays exactly
            equivariant on symmetric inputs. ``"frame"``: the uniform average over every element scoring within
            ``margin`` of the maximum (a frame that moves with the input; a few forwards). ``"soft"``: softmax
            weights (``temperature``) over all elements (``n_elements`` forwards; differentiable).
            A fixed top-k is not offered: it is not equivariant when the k-th place ties.
        class_swaps: disjoint class pairs that swap under improper elements (left/right), as
            :class:`~equivox.nets.EquivariantUNet`'s; default: the model's own
            (:func:`~equivox.nn.module.output_class_permutation`: its output spec's, or a plain model's
            ``class_swaps`` attribute).
        canonical_pose: resample the input into its principal-axes frame first (:class:`~equivox.nn.CanonicalPose`;
            cubic inputs, classification): the canonicalizer then resolves the cube-rotation ambiguity that pose
            leaves, so the composite is invariant to any rotation up to resampling.
        freeze_model: keep ``model``'s weights fixed (``requires_grad=False``) and the model in eval mode (batch-norm
            statistics untouched): training the wrapper then fits the canonicalizer alone.
        prior_weight: weight of the prior loss (cross-entropy of the scores to the identity) added to the task loss
            during training (:meth:`auxiliary_loss`, collected by equivox's training modules).
        margin, temperature, tie_tolerance: see ``mode``.
        sample_in_training: during training, draw the element from the softmax of the scores instead of taking
            the top one, so the model also learns the poses the canonicalizer is unsure between (what it meets on
            unseen data, where the canonicalizer is less sure than on the items it was fitted to).

    Training (``model.train()``, grad enabled): the top element is chosen, the canonical input is the
    straight-through mixture ``sum_h w_h h^-1 . x`` (``w`` = one-hot in value, softmax in gradient; volumes whose
    rotations change their shape fall back to the hard choice and the prior alone), and the prior loss on the scores
    is stored for the training step.

    Shapes: classify ``(B, C, D, H, W) -> (B, K)``; segment ``-> (B, K, D, H, W)`` (as ``model``).
    Exactness: for every grid-exact ``g`` of the scorer's group, classify: ``out(g.x) == out(x)``; segment:
    ``out(g.x) == g.out(x)`` (classes permuted by ``class_swaps`` for improper ``g``), to float rounding, trained
    or not.

    Contract (:class:`~equivox.nn.EquivariantModule`): ``in_spec``: ``C`` scalar (plain) fields of ``group``;
    ``out_spec``: ``K`` scalar fields of ``group``: invariant logits (classify) or equivariant per-voxel logits
    (segment, with the ``class_swaps`` permutation as ``out_spec.class_permutation``). ``C`` and ``K`` are the
    model's (:func:`~equivox.nn.module.wrapped_channels`: its specs, ``in_channels`` / ``out_channels``, or its
    first / last convolution; else the scorer's input channels, and 1). :meth:`check_equivariance` checks the
    composite over the grid-exact elements of ``group``. :meth:`export`: this class with the model and the scorer
    exported (scriptable when they are and the scorer is a :class:`GroupScorer`); with ``canonical_pose=True`` it
    raises :class:`~equivox.core.ExportError` (the pose resampling has no export).
    """

    __jit_unused_properties__ = ["n_elements", "out_tensor_channels"]
    # element actions as data, typed for TorchScript (the identity's empty flip list has no inferable type)
    axes: List[List[int]]
    flips: List[List[int]]
    inv_axes: List[List[int]]
    inv_flips: List[List[int]]
    improper: List[bool]

    def __init__(self, model: nn.Module, scorer: Union[GroupScorer, str], task: str = "classify", mode: str = "hard",
                 class_swaps: Optional[Sequence[Sequence[int]]] = None, canonical_pose: bool = False,
                 freeze_model: bool = False, prior_weight: float = 1.0, margin: float = 0.5,
                 temperature: float = 1.0, tie_tolerance: float = 1e-4, sample_in_training: bool = True,
                 upright_head: Optional[nn.Module] = None):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if margin < 0 or temperature <= 0 or tie_tolerance < 0:
            raise ValueError(f"need margin >= 0, temperature > 0, tie_tolerance >= 0; got {margin}, {temperature}, "
                             f"{tie_tolerance}")
        confidence = isinstance(scorer, str)
        self.model = model
        self.scorer = None if confidence else scorer
        if upright_head is not None and not confidence:
            raise ValueError("upright_head scores the model's moved copies: give a group name as scorer, not a "
                             "GroupScorer")
        self.upright_head = upright_head
        self.task, self.mode = task, mode
        self.group = get_group(scorer).name if confidence else scorer.group
        self.margin, self.temperature, self.tie_tolerance = float(margin), float(temperature), float(tie_tolerance)
        self.prior_weight = float(prior_weight)
        self.sample_in_training = bool(sample_in_training)
        self.pose = CanonicalPose() if canonical_pose else None
        for attr in ("in_channels", "out_channels", "size_multiple"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))
        if class_swaps is None:  # the model's own permutation (its output spec's; a plain model's attribute)
            model_perm = output_class_permutation(model)
            class_swaps = [(c, p) for c, p in enumerate(model_perm) if c < p] if model_perm else None
        self.class_swaps = [tuple(int(c) for c in p) for p in class_swaps] if class_swaps else None
        in_channels, out_channels = wrapped_channels(model)
        if self.class_swaps and out_channels is None:
            raise ValueError("class_swaps need the number of classes: give the model an out_channels attribute")
        perm = class_permutation(self.class_swaps, out_channels) if self.class_swaps else list(range(1))
        self.register_buffer("class_perm", torch.tensor(list(perm)), persistent=False)
        self.swaps_classes = bool(self.class_swaps) and task == "segment"
        self._set_specs()
        els = grid_elements_of_name(self.group) if confidence else scorer.elements
        self.identity_index = next(i for i, e in enumerate(els) if e.is_identity)
        self.axes: List[List[int]] = [e.axes_and_flips[0] for e in els]
        self.flips: List[List[int]] = [e.axes_and_flips[1] for e in els]
        self.inv_axes: List[List[int]] = [e.inverse().axes_and_flips[0] for e in els]
        self.inv_flips: List[List[int]] = [e.inverse().axes_and_flips[1] for e in els]
        self.improper: List[bool] = [e.determinant < 0 for e in els]
        self.freeze_model = bool(freeze_model)
        if self.freeze_model:
            for p in self.model.parameters():
                p.requires_grad_(False)
            self.model.eval()
        self._aux = None

    def _set_specs(self) -> None:
        """``in_spec`` / ``out_spec`` (see the class docstring)."""
        in_channels, out_channels = wrapped_channels(self.model)
        if in_channels is None and self.scorer is not None:
            in_channels = self.scorer.in_spec.size
        self.in_spec = FieldSpec.scalar(self.group, in_channels or 1)
        perm = [int(c) for c in self.class_perm.tolist()] if self.swaps_classes else None
        self.out_spec = FieldSpec.scalar(self.group, out_channels or 1).with_class_permutation(perm)

    # ------------------------------------------------------------------ nn.Module
    def __setstate__(self, state):
        super().__setstate__(state)
        if "in_spec" not in self.__dict__:  # a whole model pickled before the wrapper had field types
            self._set_specs()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_model:
            self.model.eval()
        return self

    @property
    def n_elements(self) -> int:
        return len(self.axes)

    def element_weights(self, scores: torch.Tensor) -> torch.Tensor:
        """Weights ``(B, n_elements)`` (rows sum to 1) of the elements ``mode`` averages over, from ``scores``.

        Every rule here treats the elements alike, so the weights permute with the scores (equivariance)."""
        if self.mode == "soft":
            return torch.softmax(scores / self.temperature, 1)
        top = scores.amax(1, keepdim=True)
        if self.mode == "frame":
            chosen = scores >= top - self.margin
        else:
            chosen = scores >= top - self.tie_tolerance * top.abs().clamp_min(1.0)
        w = chosen.to(scores.dtype)
        return w / w.sum(1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pose is not None:
            x = self.pose(x)
        if self.training and self.mode != "soft":
            return self._training_forward(x)
        scores = self._scores(x)
        if self.training and self.scorer is not None:
            self._store_prior(scores)
        return self._averaged(x, self.element_weights(scores))

    def _averaged(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``sum_h w_h out_h`` with ``out_h`` = ``f(h^-1.x)`` (classify) or ``h.f(h^-1.x)`` (segment); the model runs
        once per element on the items that weight it (one element per item, unless tied)."""
        if bool((weights > 0).sum(1).eq(1).all()):  # one element per item (no ties)
            ks: List[int] = weights.argmax(1).tolist()
            moved = [_move(x[b:b + 1], self.inv_axes[ks[b]], self.inv_flips[ks[b]]) for b in range(len(ks))]
            return self._per_item(moved, ks)
        out = torch.zeros(0)
        started = False
        for k in range(len(self.axes)):
            items = torch.nonzero(weights[:, k] > 0).flatten()
            if items.numel() == 0:
                continue
            y = self._restore(self.model(_move(x.index_select(0, items), self.inv_axes[k], self.inv_flips[k])), k)
            w = weights.index_select(0, items)[:, k].to(y.dtype).reshape([-1] + [1] * (y.dim() - 1))
            if not started:
                out = torch.zeros([x.shape[0]] + list(y.shape[1:]), dtype=y.dtype, device=y.device)
                started = True
            out = out.index_add(0, items, y * w)
        return out

    def _per_item(self, moved: List[torch.Tensor], ks: List[int]) -> torch.Tensor:
        """The model on each item's canonical input ``moved[b]`` (``(1, C, ...)``, element ``ks[b]``), outputs
        restored to the item's frame: one batched forward when the canonical inputs share a shape (cubic
        volumes), else one forward per item."""
        same = True
        for t in moved:
            same = same and t.shape == moved[0].shape
        if not same:
            return torch.cat([self._restore(self.model(t), k) for t, k in zip(moved, ks)])
        y = self.model(torch.cat(moved))
        return torch.cat([self._restore(y[b:b + 1], ks[b]) for b in range(len(ks))])

    def _restore(self, y: torch.Tensor, k: int) -> torch.Tensor:
        """A model output for the canonical input ``h_k^-1.x`` brought back to ``x``'s frame (segmentation)."""
        if self.task != "segment":
            return y
        y = _move(y, self.axes[k], self.flips[k])
        if self.swaps_classes and self.improper[k]:
            y = y.index_select(1, self.class_perm)
        return y

    @torch.jit.unused
    def _store_prior(self, scores: torch.Tensor) -> None:
        target = torch.full((scores.shape[0],), self.identity_index, dtype=torch.long, device=scores.device)
        self._aux = self.prior_weight * F.cross_entropy(scores, target)

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_elements)`` scores that permute with the input: the :class:`GroupScorer`'s, or the model's
        confidence on each moved copy (:func:`confidence_scores`)."""
        scorer = self.scorer
        if scorer is not None:
            return scorer(x)
        return self._confidence(x)

    def moved_copy(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``h_k^-1 . x``: the copy of ``x`` that element ``k`` would make canonical."""
        return _move(x, self.inv_axes[k], self.inv_flips[k])

    @torch.jit.unused
    def _confidence(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, n_elements)`` from the model's output on each moved copy alone (never the element's index,
        so they permute with the input): its confidence, or the fitted upright head's reading of it."""
        from .upright import copy_features

        with torch.no_grad():
            outs = [self.model(self.moved_copy(x, k)) for k in range(self.n_elements)]
            if self.upright_head is not None:
                return torch.stack([self.upright_head(copy_features(y)) for y in outs], 1)
            return torch.stack([confidence_scores(y) for y in outs], 1)

    @torch.jit.unused
    def _training_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scorer is None:  # nothing to fit: the model trains on the poses its confidence picks
            return self._averaged(x, self.element_weights(self._scores(x)))
        scores = self.scorer(x)
        self._store_prior(scores)
        soft = torch.softmax(scores, 1)
        choice = torch.multinomial(soft.detach(), 1).flatten() if self.sample_in_training else scores.argmax(1)
        copies = [_move(x, self.inv_axes[k], self.inv_flips[k]) for k in range(self.n_elements)]
        if all(c.shape == x.shape for c in copies):
            w = F.one_hot(choice, self.n_elements).to(soft) - soft.detach() + soft  # straight-through
            canonical = torch.einsum("bk,kb...->b...", w, torch.stack(copies))
        else:
            canonical = None
        ks = choice.tolist()
        if canonical is None:  # rotations change the shape: the scorer learns from the prior alone
            return self._per_item([copies[k][b:b + 1] for b, k in enumerate(ks)], ks)
        return self._per_item(list(canonical.split(1)), ks)

    def auxiliary_loss(self) -> Optional[torch.Tensor]:
        """The prior loss of the last training forward (``prior_weight`` x cross-entropy of the scores to the
        identity), then cleared; ``None`` when there is none. equivox's training modules add it to the task loss."""
        aux, self._aux = self._aux, None
        return aux

    @torch.no_grad()
    def choices(self, x: torch.Tensor) -> torch.Tensor:
        """Index (into ``scorer.elements``) of the top-scoring element for each item ``(B,)`` (eval mode)."""
        was = self.training
        self.eval()
        try:
            if self.pose is not None:
                x = self.pose(x)
            return self._scores(x).argmax(1)
        finally:
            self.train(was)

    def identity_rate(self, x: torch.Tensor, batch_size: int = 64) -> float:
        """Fraction of the items of ``x`` ``(N, C, D, H, W)`` mapped to the identity: on upright data, how often
        the canonicalizer knows which way is up (chance: ``1 / n_elements``)."""
        picks = torch.cat([self.choices(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        return float((picks == self.identity_index).float().mean())

    @torch.no_grad()
    def equivalent_rate(self, x: torch.Tensor, batch_size: int = 64) -> float:
        """Fraction of the items of ``x`` ``(N, C, D, H, W)`` mapped to a pose the item cannot tell from its own:
        the chosen element ``g`` moves the voxels onto themselves (``g.x == x`` exactly; a symmetric part rotated
        by one of its symmetries is still upright). At least :meth:`identity_rate`: the fair score of "which way is
        up" for symmetric objects."""
        hits = 0
        for i in range(0, len(x), batch_size):
            chunk = x[i:i + batch_size]
            seen = self.pose(chunk) if self.pose is not None else chunk  # what the scorer chose a pose for
            for item, k in zip(seen, self.choices(chunk).tolist()):
                moved = _move(item[None], self.axes[k], self.flips[k])
                hits += int(moved.shape == item[None].shape and torch.equal(moved, item[None]))
        return hits / max(1, len(x))

    def _export(self) -> nn.Module:
        from ..export import export_children

        if self.pose is not None:
            raise ExportError("Canonicalized(canonical_pose=True) cannot be exported: its CanonicalPose resamples "
                              "each input into a data-dependent frame (an eigen-decomposition and grid_sample), "
                              "which is not part of export(); export the wrapper built without canonical_pose, or "
                              "run this one eagerly")
        out = export_children(self)
        out._aux = None
        return out

    def extra_repr(self) -> str:
        return (f"task={self.task!r}, mode={self.mode!r}, group={self.group!r} ({self.n_elements} elements)"
                + (", model frozen" if self.freeze_model else "") + (f", class_swaps={self.class_swaps}"
                                                                      if self.class_swaps else ""))


def confidence_scores(logits: torch.Tensor) -> torch.Tensor:
    """A model's confidence per item ``(B,)`` from its logits: the top softmax probability (classification
    ``(B, K)``), averaged over voxels for per-voxel logits ``(B, K, D, H, W)``. Invariant to permuting voxels and
    classes, so the confidence of every moved copy permutes with the input (exact canonicalization)."""
    p = torch.softmax(logits.float(), 1).amax(1)
    return p.reshape(p.shape[0], -1).mean(1)


def canonicalize(model: nn.Module, group: str = "octa", task: str = "classify", *, mode: str = "hard",
                 in_channels: Optional[int] = None, channels: Sequence[int] = (2, 4), strides: Sequence[int] = (2,),
                 input_size: Optional[int] = 16, class_swaps: Optional[Sequence[Sequence[int]]] = None,
                 canonical_pose: bool = False, freeze_model: bool = False, prior_weight: float = 1.0,
                 margin: float = 0.5, temperature: float = 1.0, sample_in_training: bool = True,
                 scorer: str = "network") -> Canonicalized:
    """Put ``model`` behind an exactly equivariant canonicalizer: the one entry point.

    Args:
        model: any module on ``(B, C, D, H, W)`` (equivox, MONAI, nnU-Net's network, plain torch), trained or not.
        group: registered group whose grid-exact elements the composite is exact for (``"octa"``: the 24 cube
            rotations; ``"full_octa"``: 48 with reflections; ``"d4_axial"`` etc. for scans with a slice axis; any
            registered group, see :func:`~equivox.canonicalization.scorer_group`).
        task: ``"classify"`` (invariant logits) or ``"segment"`` (equivariant per-voxel logits).
        mode, class_swaps, canonical_pose, freeze_model, prior_weight, margin, temperature, sample_in_training:
            see :class:`Canonicalized`.
        in_channels: input channels (default ``model.in_channels``, else 1).
        channels, strides, input_size: the canonicalizer's :class:`GroupScorer` (fields per level; the pooled
            copy it sees).
        scorer: ``"network"`` (default): a :class:`GroupScorer` chooses the pose (fit it, or train it with the
            model); ``"confidence"``: the element whose moved copy the model is most confident on (adaptive
            canonicalization, Lin & Levie 2025): nothing to fit, exact from the start, but ``n_elements`` forward
            passes per item (24x for ``"octa"``), and a plain model is often confident on poses it never saw;
            ``"calibrated"``: the same passes, scored by a small head that reads the model's output on each copy
            (:class:`~equivox.canonicalization.UprightHead`), fitted on held-out upright items with
            :func:`~equivox.canonicalization.fit_upright_head` (seconds; exact before and after).

    Returns:
        a :class:`Canonicalized` module; in eval mode it is exact from the start (untrained canonicalizer:
        an arbitrary but equivariant choice). Fit it with :func:`equivox.canonicalization.fit_canonicalizer`
        (frozen model) or train it with the model (``equivox.training.fit``; the prior loss is added).
        When ``model`` was built from an equivox spec, the wrapper gets one too (checkpoints rebuild it).

    Example::

        >>> import torch
        >>> from torch import nn
        >>> from equivox.canonicalization import canonicalize
        >>> plain = nn.Sequential(nn.Conv3d(1, 3, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten())
        >>> net = canonicalize(plain, "octa", "classify", input_size=8).eval()
        >>> x = torch.rand(2, 1, 16, 16, 16)
        >>> bool(torch.allclose(net(x), net(torch.rot90(x, 1, (2, 3))), atol=1e-5))
        True
    """
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {SCORERS}, got {scorer!r}")
    cin = int(in_channels if in_channels is not None else getattr(model, "in_channels", 1))
    net = GroupScorer(group, cin, channels, strides, input_size) if scorer == "network" else get_group(group).name
    head = None
    if scorer == "calibrated":
        from .upright import UprightHead

        k = wrapped_channels(model)[1]  # the model's classes: from its spec, out_channels or last layer
        head = UprightHead(k * (8 if task == "segment" else 1))
    wrapper = Canonicalized(model, net, task, mode, class_swaps, canonical_pose, freeze_model, prior_weight,
                            margin, temperature, sample_in_training=sample_in_training, upright_head=head)
    inner = getattr(model, "equivox_spec", None)
    if inner is not None:
        wrapper.equivox_spec = {"cls": "Canonicalized", "kwargs": dict(
            model=inner, group=wrapper.group, task=task, mode=mode, in_channels=cin, channels=list(channels),
            strides=list(strides), input_size=input_size, class_swaps=[list(p) for p in class_swaps] if class_swaps
            else None, canonical_pose=canonical_pose, freeze_model=freeze_model, prior_weight=prior_weight,
            margin=margin, temperature=temperature, sample_in_training=sample_in_training, scorer=scorer)}
    return wrapper
