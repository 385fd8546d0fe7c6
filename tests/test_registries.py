"""The one registry mechanism, and each registry built on it (models, metrics, optimisers,
schedules, brainsets, modalities)."""

import pytest
import torch
import torchmetrics

from torch_brain._registry import Registry
from torch_brain.brainsets import BRAINSET_REGISTRY, list_brainsets
from torch_brain.models import MODEL_REGISTRY, POYO, POYOPlus, create_model, list_models
from torch_brain.registry import MODALITY_REGISTRY, DataType, get_modality
from torch_brain.training import (
    METRIC_REGISTRY,
    OPTIMIZER_REGISTRY,
    SCHEDULER_REGISTRY,
    build_model,
    build_optimizer,
    build_scheduler,
    create_metric,
    list_metrics,
)


def test_register_lookup_create_and_reverse_lookup():
    reg = Registry("shape")

    @reg.register("square")
    class Square:
        def __init__(self, side=1.0):
            self.side = side

    reg.register("circle", dict)
    assert reg.names() == ["circle", "square"] and len(reg) == 2 and "square" in reg
    assert reg.lookup("square") is Square and reg["square"] is Square
    assert reg.create("square", side=3.0).side == 3.0
    assert reg.name_of(Square) == "square" and reg.name_of(Square()) == "square"
    reg.register("square", Square)  # the same object again: a no-op
    assert reg.names() == ["circle", "square"]


@pytest.mark.parametrize(
    "action, exc, match",
    [
        (lambda r: r.lookup("sqaure"), ValueError, r"Unknown shape 'sqaure'. Valid shapes are: square. Did you mean 'square'\?"),
        (lambda r: r.lookup(3), ValueError, r"Unknown shape 3. Valid shapes are: square"),
        (lambda r: r.register("square", object()), ValueError, "a shape named 'square' is already registered"),
        (lambda r: r.register("", int), TypeError, "shape name must be a non-empty str"),
        (lambda r: r.name_of(float), ValueError, "is not a registered shape; registered: square"),
        (lambda r: r.create("square"), TypeError, "is not callable"),
    ],
)
def test_registry_errors(action, exc, match):
    reg = Registry("shape")
    reg.register("square", 4)
    with pytest.raises(exc, match=match):
        action(reg)


def test_every_registry_uses_the_mechanism_and_lists_the_builtins():
    assert list_models() == ["poyo", "poyo_plus"]
    assert MODEL_REGISTRY["poyo"] is POYO and MODEL_REGISTRY["poyo_plus"] is POYOPlus
    assert {"adam", "adamw", "sgd", "sparse_lamb"} <= set(OPTIMIZER_REGISTRY.names())
    assert {"cosine", "none", "onecycle", "plateau", "step", "warmup_cosine"} <= set(SCHEDULER_REGISTRY.names())
    assert {"r2", "mse", "mae", "pearson", "accuracy", "balanced_accuracy", "f1"} <= set(METRIC_REGISTRY.names())
    assert {"synthetic_reaching"} <= set(list_brainsets()) == set(BRAINSET_REGISTRY.names())
    # modality ids are fixed for the built-ins, whatever the registry's implementation
    assert MODALITY_REGISTRY["cursor_velocity_2d"].id == 1 and MODALITY_REGISTRY["reach_direction"].id == 8
    for reg in (MODEL_REGISTRY, OPTIMIZER_REGISTRY, SCHEDULER_REGISTRY, METRIC_REGISTRY, BRAINSET_REGISTRY,
                MODALITY_REGISTRY):
        assert isinstance(reg, Registry)


def test_models_by_name():
    model = create_model("poyo_plus", dim=32, depth=1, dim_head=16, self_heads=2,
                         readout_specs=["cursor_velocity_2d"])
    assert isinstance(model, POYOPlus) and list(model.readout.readout_specs) == ["cursor_velocity_2d"]
    poyo = build_model("poyo", ["reach_direction"], dim=32, depth=1, dim_head=16, self_heads=2)
    assert isinstance(poyo, POYO) and poyo.readout_spec.name == "reach_direction"
    with pytest.raises(ValueError, match="model 'poyo' decodes exactly one task"):
        build_model("poyo", ["reach_direction", "cursor_velocity_2d"])
    with pytest.raises(ValueError, match=r"Unknown model 'poyoplus'. Valid models are: poyo, poyo_plus. Did you mean 'poyo_plus'"):
        build_model("poyoplus", ["cursor_velocity_2d"])


def test_metrics_are_keyed_by_task_type():
    assert list_metrics(DataType.CONTINUOUS) == ["mae", "mse", "pearson", "r2"]
    assert list_metrics("multinomial") == ["accuracy", "balanced_accuracy", "f1"]
    r2 = create_metric("r2", get_modality("cursor_velocity_2d"))
    r2.update(torch.tensor([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]]), torch.tensor([[1.0, 2.0], [2.0, 1.0], [3.0, 4.0]]))
    # hand computed: dim 0 exact (1.0); dim 1: 1 - 1/ (sum((y-mean)^2)=4.6667) = 0.78571
    assert float(r2.compute()) == pytest.approx((1.0 + (1 - 1 / (14 / 3))) / 2, abs=1e-6)
    acc = create_metric("accuracy", get_modality("reach_direction"))
    assert isinstance(acc, torchmetrics.classification.MulticlassAccuracy) and acc.num_classes == 8
    with pytest.raises(ValueError, match="metric 'r2' does not score MULTINOMIAL tasks like 'reach_direction'; "
                                         "metrics for MULTINOMIAL: accuracy, balanced_accuracy, f1"):
        create_metric("r2", get_modality("reach_direction"))


@pytest.fixture
def _forget_test_entries():
    yield
    # registries are process-wide: later tests list the registered names
    OPTIMIZER_REGISTRY._entries.pop("test_plain_sgd", None)
    SCHEDULER_REGISTRY._entries.pop("test_halve", None)


def test_a_registered_optimizer_and_schedule_work_by_name(_forget_test_entries):
    params = [torch.nn.Parameter(torch.ones(3))]
    OPTIMIZER_REGISTRY.register("test_plain_sgd", torch.optim.SGD)
    opt = build_optimizer(params, "test_plain_sgd", lr=0.5)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0
    with pytest.raises(ValueError, match="optimizer 'test_plain_sgd' has no option 'momentm'.*Did you mean 'momentum'"):
        build_optimizer(params, "test_plain_sgd", momentm=0.1)

    @SCHEDULER_REGISTRY.register("test_halve")
    def _halve(optimizer, *, total_steps, every: int = 2):
        return {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, every, 0.5), "interval": "step",
                "frequency": 1}

    cfg = build_scheduler(opt, "test_halve", every=1)
    opt.step()
    cfg["scheduler"].step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="schedule 'test_halve' has no option 'evrey'.*Did you mean 'every'"):
        build_scheduler(opt, "test_halve", evrey=1)
    # built-in defaults still apply: sgd has momentum 0.9, adamw weight decay 0.01
    assert build_optimizer(params, "sgd").defaults["momentum"] == 0.9
    assert build_optimizer(params, "adamw").defaults["weight_decay"] == 0.01


def test_check_options_reads_the_signature():
    reg = Registry("widget")

    @reg.register("plain")
    class Plain:
        def __init__(self, size: int = 1, *, colour: str = "red"):
            pass

    reg.register("factory", lambda owner, depth=2: None)
    reg.register("open", lambda **anything: None)
    reg.check_options("plain", ["size", "colour"])
    reg.check_options("factory", ["depth"], exclude=("owner",))
    reg.check_options("open", ["whatever"])  # **kwargs accepts every name
    with pytest.raises(ValueError, match=r"^widget 'plain' has no option 'colur'. Did you mean 'colour'\? "
                                         r"Valid options are: colour, size.$"):
        reg.check_options("plain", ["colur"])
    with pytest.raises(ValueError, match="widget 'factory' has no option 'owner'. Valid options are: depth."):
        reg.check_options("factory", ["owner"], exclude=("owner",))
