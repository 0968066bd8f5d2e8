"""Lightning modules wrapping any ``nn.Module`` (equivariant or not) for 3D classification and segmentation."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import pytorch_lightning as pl
import torch
from torch import nn

# the pickled-architecture helpers live in equivox.models.specs; re-exported here for existing imports
from ..models.specs import PICKLED_MODEL, SKELETON_KEY, model_from_skeleton, model_skeleton, pickled_spec  # noqa: F401

__all__ = ["ClassificationModule", "SegmentationModule", "split_batch", "PICKLED_MODEL", "pickled_spec",
           "model_skeleton", "model_from_skeleton", "COMPILE_BACKEND"]

#: the ``torch.compile`` backend of training with ``compile=True`` (tests use a cheap one, e.g. ``"aot_eager"``)
COMPILE_BACKEND = "inductor"


def split_batch(batch) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` from a batch given as a dict ``{"image", "label"}`` or a tuple/list."""
    if isinstance(batch, dict):
        x, y = batch["image"], batch["label"]
    else:
        x, y = batch[0], batch[1]
    if hasattr(x, "as_tensor"):
        x = x.as_tensor()
    if hasattr(y, "as_tensor"):
        y = y.as_tensor()
    return x.float(), torch.as_tensor(y)


class _Base(pl.LightningModule):
    def __init__(self, model: nn.Module, num_classes: int, lr: float, weight_decay: float,
                 model_spec: Optional[Dict[str, Any]], config: Optional[Dict[str, Any]],
                 data_info: Optional[Dict[str, Any]] = None, compile: bool = False):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.model = model
        # compile=True: training steps call the model through torch.compile (built at the first step, on the model's
        # device); held in a list, so the compiled wrapper is no submodule (state dict and checkpoints unchanged)
        self.compile_training = bool(compile)
        self._compiled_model: list = []
        self.num_classes = num_classes
        # modules contributing a loss of their own (a canonicalizer's prior), found once, not per step
        self._aux_sources = [m for m in model.modules() if callable(getattr(m, "auxiliary_loss", None))]
        # stored in the checkpoint: enough to rebuild the model (equivox.training.load_checkpoint)
        # (data_info: what the data preparation decided -- class names, channels, intensity rule and its reason,
        # voxel spacing -- so evaluate and predict prepare new data the same way)
        self.save_hyperparameters({"num_classes": num_classes, "lr": lr, "weight_decay": weight_decay,
                                   "model_spec": model_spec, "config": config, "data_info": data_info or {}})
        self._skeleton: Optional[bytes] = None

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """A model without a registered spec (``model_spec["cls"] == PICKLED_MODEL``): its pickled architecture
        goes into the checkpoint too (made once: the architecture does not change while training)."""
        if (self.hparams.get("model_spec") or {}).get("cls") == PICKLED_MODEL:
            if self._skeleton is None:
                self._skeleton = model_skeleton(self.model)
            checkpoint[SKELETON_KEY] = self._skeleton

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output in a training step: ``self.model(x)``, through ``torch.compile`` (backend
        :data:`COMPILE_BACKEND`) when the module was made with ``compile=True``."""
        if not self.compile_training:
            return self.model(x)
        if not self._compiled_model:
            self._compiled_model.append(torch.compile(self.model, backend=COMPILE_BACKEND))
        return self._compiled_model[0](x)

    def _with_auxiliary(self, loss: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``loss`` plus the auxiliary losses the model's modules stored in this step (``auxiliary_loss()``, e.g. a
        canonicalizer's prior), logged as ``train_aux_loss``."""
        aux = [a for a in (m.auxiliary_loss() for m in self._aux_sources) if a is not None]
        if not aux:
            return loss
        total = torch.stack(aux).sum()
        self.log("train_aux_loss", total, on_step=True, on_epoch=True, batch_size=batch_size)
        return loss + total

    def _log_identity_rate(self, x: torch.Tensor) -> None:
        """A canonicalized model (:class:`equivox.canonicalization.Canonicalized`): the fraction of validation
        items it maps to the identity (on upright data: how often it knows which way is up)."""
        choices = getattr(self.model, "choices", None)
        if callable(choices):
            rate = (choices(x) == self.model.identity_index).float().mean()
            self.log("val_identity_rate", rate, on_epoch=True, batch_size=len(x), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class ClassificationModule(_Base):
    """Classification of volumes ``(B, C, D, H, W)`` into ``num_classes`` classes with cross-entropy.

    ``model`` maps ``(B, C, D, H, W)`` to logits ``(B, num_classes)``. Logs ``train_loss``, ``train_acc`` (per
    step and epoch), ``val_loss``, ``val_acc`` and ``val_auroc`` (torchmetrics, multiclass one-vs-rest macro)
    per epoch. Optimiser: AdamW(``lr``, ``weight_decay``). ``compile=True``: training steps run the model through
    ``torch.compile`` (:meth:`training_forward`).
    """

    def __init__(self, model: nn.Module, num_classes: int, lr: float = 3e-3, weight_decay: float = 1e-4,
                 model_spec: Optional[Dict[str, Any]] = None, config: Optional[Dict[str, Any]] = None,
                 data_info: Optional[Dict[str, Any]] = None, compile: bool = False):
        super().__init__(model, num_classes, lr, weight_decay, model_spec, config, data_info, compile)
        from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC

        self.loss = nn.CrossEntropyLoss()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_auroc = MulticlassAUROC(num_classes, average="macro")

    def training_step(self, batch, batch_idx):
        x, y = split_batch(batch)
        logits = self.training_forward(x)
        loss = self._with_auxiliary(self.loss(logits, y), len(y))
        self.train_acc(logits.detach(), y)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y))
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = split_batch(batch)
        logits = self.model(x)
        self._log_identity_rate(x)
        self.val_acc.update(logits, y)
        self.val_auroc.update(logits.float().softmax(-1), y)
        self.log("val_loss", self.loss(logits, y), prog_bar=True, on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log("val_acc", self.val_acc, prog_bar=True, on_epoch=True, batch_size=len(y))
        self.log("val_auroc", self.val_auroc, on_epoch=True, batch_size=len(y))


class SegmentationModule(_Base):
    """Per-voxel segmentation with MONAI ``DiceCELoss`` (softmax, one-hot labels) and ``DiceMetric``.

    ``model`` maps ``(B, C, D, H, W)`` to logits ``(B, num_classes, D, H, W)``; labels are ``(B, 1, D, H, W)``
    class indices. Validation runs ``inferer`` (e.g. MONAI ``SlidingWindowInferer`` for whole volumes) or a
    direct forward pass, and logs ``val_loss`` and ``val_dice`` (mean over foreground classes present).
    ``compile=True``: training steps run the model through ``torch.compile`` (:meth:`training_forward`).
    """

    def __init__(self, model: nn.Module, num_classes: int, lr: float = 3e-3, weight_decay: float = 1e-4,
                 model_spec: Optional[Dict[str, Any]] = None, config: Optional[Dict[str, Any]] = None,
                 inferer=None, data_info: Optional[Dict[str, Any]] = None, compile: bool = False):
        super().__init__(model, num_classes, lr, weight_decay, model_spec, config, data_info, compile)
        from monai.losses import DiceCELoss
        from monai.metrics import DiceMetric

        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)
        self.dice = DiceMetric(include_background=False, reduction="mean", ignore_empty=True)
        self.inferer = inferer

    def training_step(self, batch, batch_idx):
        x, y = split_batch(batch)
        loss = self._with_auxiliary(self.loss(self.training_forward(x), y), len(x))
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_idx):
        from monai.networks.utils import one_hot

        x, y = split_batch(batch)
        self._log_identity_rate(x)
        logits = self.inferer(x, self.model) if self.inferer is not None else self.model(x)
        if hasattr(logits, "as_tensor"):
            logits = logits.as_tensor()
        self.log("val_loss", self.loss(logits, y), prog_bar=True, on_epoch=True, batch_size=len(x), sync_dist=True)
        pred = one_hot(logits.argmax(1, keepdim=True), self.num_classes)
        self.dice(pred, one_hot(y.long(), self.num_classes))

    def on_validation_epoch_end(self):
        value = self.dice.aggregate()
        self.dice.reset()
        self.log("val_dice", torch.nan_to_num(torch.as_tensor(value, dtype=torch.float32)).mean(), prog_bar=True,
                 sync_dist=True)
