"""A calibrated confidence: a small head, fitted on held-out upright items, that reads the frozen model's own output
on every moved copy of an input and scores how upright that copy looks.

The confidence canonicalizer (``scorer="confidence"``, adaptive canonicalization) picks the copy the model is most
confident on; a plain model is often confident on poses it never saw. The calibrated one (``scorer="calibrated"``)
keeps its exactness and replaces the fixed rule (top softmax probability) by a learned one: for copy ``h^-1.x`` the
score is ``head(features(model(h^-1.x)))``. The score of a copy depends on the copy's content alone, never on the
element's index, so the scores of ``g.x`` are those of ``x`` permuted (``h^-1.g.x`` is copy ``g^-1 h`` of ``x``) and
the composite stays exactly invariant (classification) / equivariant (segmentation) whatever the head learned.

Features of one copy's output, in the copy's own frame (where things are is what tells up from down):

* classification ``(B, K)`` logits: the log-probabilities ``(B, K)``;
* segmentation ``(B, K, D, H, W)`` logits: the class probabilities averaged over each octant of the copy
  ``(B, 8 K)``: which classes the model puts above, below, left and right.

:func:`fit_upright_head` fits the head on upright items the model was not trained on (a validation split; on its own
training items a model is over-confident in every pose): cross-entropy of the scores of the ``n_elements`` copies of
each item toward the upright copy. Cost: ``n_elements`` forward passes of the model per item at inference (24x for
``"octa"``), as the confidence canonicalizer; fitting: the same passes once over the fitting items, then seconds.
"""
from __future__ import annotations

import time
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UprightHead", "copy_features", "fit_upright_head"]


def copy_features(logits: torch.Tensor) -> torch.Tensor:
    """Features ``(B, F)`` of the model's output on one moved copy: log-probabilities ``(B, K)`` for classification
    logits ``(B, K)``; class probabilities averaged over the 8 octants of the copy ``(B, 8 K)`` for per-voxel logits
    ``(B, K, D, H, W)`` (any spatial size: octants by adaptive pooling)."""
    logits = logits.float()
    if logits.dim() == 2:
        return torch.log_softmax(logits, 1)
    p = torch.softmax(logits, 1)
    return F.adaptive_avg_pool3d(p, 2).flatten(1)


class UprightHead(nn.Module):
    """``(B, F) -> (B,)``: how upright a copy looks, from :func:`copy_features` of the model's output on it.

    Args:
        in_features: ``K`` (classification) or ``8 K`` (segmentation), ``K`` = the model's classes.
        hidden: width of the one hidden layer.
    """

    def __init__(self, in_features: int, hidden: int = 32):
        super().__init__()
        self.in_features, self.hidden = int(in_features), int(hidden)
        self.net = nn.Sequential(nn.Linear(self.in_features, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)


@torch.no_grad()
def _all_copy_features(wrapper, images: Sequence[torch.Tensor], batch_size: int) -> torch.Tensor:
    """``(N, n_elements, F)``: :func:`copy_features` of the frozen model on every moved copy of every item of
    ``images`` (``(C, D, H, W)`` each, or batches ``(B, C, D, H, W)``; shapes may differ between batches)."""
    was = wrapper.training
    wrapper.eval()
    try:
        out = []
        batches = []
        for item in images:
            batches.append(item if item.dim() == 5 else item[None])
        groups, current = [], []
        for b in batches:  # batch consecutive items of one shape
            if current and (b.shape[1:] != current[0].shape[1:] or sum(len(t) for t in current) >= batch_size):
                groups.append(torch.cat(current))
                current = []
            current.append(b)
        if current:
            groups.append(torch.cat(current))
        for x in groups:
            x = wrapper.pose(x) if wrapper.pose is not None else x
            out.append(torch.stack([copy_features(wrapper.model(wrapper.moved_copy(x, k)))
                                    for k in range(wrapper.n_elements)], 1))
        return torch.cat(out)
    finally:
        wrapper.train(was)


def fit_upright_head(wrapper, images: Sequence[torch.Tensor], *, steps: int = 300, lr: float = 1e-2,
                     weight_decay: float = 1e-3, seed: int = 0, batch_size: int = 32) -> Dict[str, float]:
    """Fit ``wrapper.upright_head`` (a :class:`~equivox.canonicalization.Canonicalized` with
    ``scorer="calibrated"``) so that the upright copy of each item of ``images`` scores highest.

    Args:
        wrapper: the canonicalized model; its model is used as it is (frozen: only the head changes).
        images: upright items the model did not train on (a validation split): ``(C, D, H, W)`` tensors or
            ``(B, C, D, H, W)`` batches.
        steps, lr, weight_decay, seed: full-batch AdamW on the cached features (seeded: the same head every time).

    Returns:
        ``{"items", "seconds", "identity_rate"}``: the fitting items, the time (features and fitting), and the
        fraction of them whose upright copy the fitted head scores highest (chance ``1 / n_elements``).
    """
    if getattr(wrapper, "upright_head", None) is None:
        raise ValueError("fit_upright_head needs a Canonicalized model with scorer='calibrated'")
    t0 = time.time()
    feats = _all_copy_features(wrapper, images, batch_size)  # (N, G, F)
    head = wrapper.upright_head
    target = torch.full((feats.shape[0],), wrapper.identity_index, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a seeded start: the same features and seed give the same head
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / max(1, p.shape[-1])) ** 0.5)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    head.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(head(feats), target)
        loss.backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        rate = float((head(feats).argmax(1) == wrapper.identity_index).float().mean())
    return {"items": int(feats.shape[0]), "seconds": time.time() - t0, "identity_rate": rate}
