"""The ``compile`` switch of training (``TrainerConfig.compile``; YAML ``trainer: {compile: true}``; ``--compile``):
training steps call the model through ``torch.compile`` (backend ``equivox.training.modules.COMPILE_BACKEND``), the
model and its state dict stay as they are, a compiled run on the CPU gives the eager run's losses and weights, and
every default model compiles for training in one graph (no graph breaks).

Compiled through a counting backend that delegates to ``"aot_eager"`` (dynamo + AOTAutograd, forward and backward
graphs, no code generation), monkeypatched in as ``COMPILE_BACKEND``: inductor's C++ compilation takes minutes on the
2-core CI machines (tests/test_compile.py does the same for the networks' eval forward)."""
from __future__ import annotations

import copy
import csv
import warnings

import pytest
import torch

from equivox import cli
from equivox.config import ConfigError, config_options, load_yaml_config
from equivox.training import TrainConfig, build_model, fit
from equivox.training import modules as modules_mod
from equivox.training.modules import ClassificationModule, SegmentationModule


@pytest.fixture
def backend(monkeypatch, counting_backend):
    """The graph-counting backend (``counting_backend`` in conftest) as the training backend."""
    monkeypatch.setattr(modules_mod, "COMPILE_BACKEND", counting_backend)
    return counting_backend


# ------------------------------------------------------------------ the switch: Python, YAML, command line


def test_compile_is_a_trainer_setting_off_by_default_from_python_yaml_and_the_command_line(tmp_path, capsys):
    assert TrainConfig().compile is False
    assert TrainConfig(compile=True).trainer.compile is True
    assert TrainConfig(trainer={"compile": True}).compile is True
    (o,) = [o for o in config_options() if o.name == "compile"]
    assert (o.section, o.flag, o.kind, o.default) == ("trainer", "--compile", "flag", False)
    with pytest.raises(ConfigError, match="compile"):
        TrainConfig(compile="yes")
    # YAML, by section and flat
    nested, flat = tmp_path / "nested.yaml", tmp_path / "flat.yaml"
    nested.write_text("trainer:\n  compile: true\n")
    flat.write_text("compile: true\n")
    assert TrainConfig.from_dict(load_yaml_config(nested)).compile is True
    assert TrainConfig.from_dict(load_yaml_config(flat)).compile is True
    # command line: --compile, --no-compile over the YAML, and --help
    parse = cli.build_parser().parse_args
    assert cli.train_config_from_args(parse(["train", "--compile"])).compile is True
    assert cli.train_config_from_args(parse(["train"])).compile is False
    assert cli.train_config_from_args(parse(["train", "--config", str(nested)])).compile is True
    assert cli.train_config_from_args(parse(["train", "--config", str(nested), "--no-compile"])).compile is False
    assert cli.main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--compile, --no-compile" in text and "torch.compile" in text


# ------------------------------------------------------------------ compiled training steps equal eager ones


def _tiny(task: str):
    cfg = TrainConfig(task=task, channels=(2, 2), strides=(2,), convs_per_level=1, hidden_features=(8,))
    torch.manual_seed(0)
    return build_model(cfg, 1, 3)


def _steps(module, batches):
    """Losses of training steps (training_step, backward, AdamW step) on ``batches``."""
    opt = module.configure_optimizers()
    losses = []
    with warnings.catch_warnings():  # self.log outside a Trainer warns
        warnings.simplefilter("ignore")
        for i, batch in enumerate(batches):
            opt.zero_grad()
            loss = module.training_step(batch, i)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
    return torch.stack(losses)


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_compiled_training_steps_give_the_eager_losses_and_weights(task, backend):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 1, 8, 8, 8, generator=gen)
    if task == "classify":
        y, cls = torch.randint(0, 3, (2, 2), generator=gen), ClassificationModule
    else:
        y, cls = torch.randint(0, 3, (2, 2, 1, 8, 8, 8), generator=gen), SegmentationModule
    batches = [(x[i], y[i]) for i in range(2)]
    model = _tiny(task).train()
    eager = cls(copy.deepcopy(model), 3, lr=1e-2)
    compiled = cls(copy.deepcopy(model), 3, lr=1e-2, compile=True)
    assert compiled.compile_training and not eager.compile_training
    want, got = _steps(eager, batches), _steps(compiled, batches)
    assert backend.graphs == 1  # compiled once, one graph (no graph break), reused by the second step
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for (name, a), (_, b) in zip(eager.model.named_parameters(), compiled.model.named_parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    # the compiled wrapper is no submodule: the state dict (and so every checkpoint) is the model's own
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert type(compiled.model) is type(model)


def _train_losses(res):
    rows = list(csv.DictReader(open(res.metrics_csv)))
    return [float(r["train_loss_step"]) for r in rows if r.get("train_loss_step")]


def test_fit_with_compile_equals_the_eager_fit(tmp_path, backend, npz_config):
    """A compiled training run on the CPU (2 steps, the aot_eager backend): same losses and weights as eager."""
    eager = fit(npz_config(tmp_path, tmp_path / "eager", max_steps=2))
    assert backend.graphs == 0
    compiled = fit(npz_config(tmp_path, tmp_path / "compiled", max_steps=2, compile=True))
    assert backend.graphs >= 1  # the training steps went through torch.compile
    assert compiled.global_step == eager.global_step == 2
    assert compiled.module.compile_training and not eager.module.compile_training
    want, got = _train_losses(eager), _train_losses(compiled)
    assert len(want) == len(got) == 2
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)
    a, b = eager.model.state_dict(), compiled.model.state_dict()
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    # the checkpoint holds the plain model's state dict and the setting
    ckpt = torch.load(compiled.last_checkpoint, map_location="cpu", weights_only=False)
    assert set(ckpt["state_dict"]) == {"model." + k for k in a}
    assert ckpt["hyper_parameters"]["config"]["compile"] is True


# ------------------------------------------------------------------ no graph breaks in the default models


DEFAULT_MODELS = [("classify", "equivariant", {}), ("classify", "baseline", {}), ("segment", "equivariant", {}),
                  ("segment", "baseline", {}), ("segment", "plain_compute", {}),
                  ("segment", "EquivariantMonaiUNet", {"model": {"num_res_units": 2, "norm": "batch"}})]


@pytest.mark.parametrize("task, arch, extra", DEFAULT_MODELS, ids=[f"{t}-{a}" for t, a, _ in DEFAULT_MODELS])
def test_default_models_compile_for_training_in_one_graph(task, arch, extra, counting_backend):
    """Every network training builds by default (default sizes, octa): forward and backward in training mode with
    ``fullgraph=True`` (a graph break raises) in one graph, equal to eager."""
    cfg = TrainConfig(task=task, arch=arch, input_size=8, **extra)
    torch.manual_seed(0)
    model = build_model(cfg, 1, 3).train()
    twin = copy.deepcopy(model)
    counting = counting_backend
    compiled = torch.compile(twin, backend=counting, fullgraph=True)
    x = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(2))
    want, got = model(x), compiled(x)
    assert counting.graphs == 1
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    want.square().mean().backward()
    got.square().mean().backward()
    for (name, a), (_, b) in zip(model.named_parameters(), twin.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=name)
