"""GradCAM / GradCAM++: closed forms on a global-average-pooling network (CAM of Zhou et al.),
localisation, layer selection, hook hygiene (also when the model raises) and batch-size independence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.attribution.gradcam import GradCAM, GradCAMPlusPlus


class GAPNet(nn.Module):
    """``conv3×3 -> ReLU(inplace) -> global average pool -> linear``: GradCAM at the conv is CAM / (h·w)."""

    def __init__(self, channels: int = 2, features: int = 5, classes: int = 4, positive: bool = True,
                 stride: int = 1) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(channels, features, 3, stride=stride, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(features, classes)
        with torch.no_grad():
            if positive:  # positive activations: the ReLU is the identity and the closed forms are exact
                self.conv.weight.copy_(torch.rand(self.conv.weight.shape, generator=generator))
                self.conv.bias.fill_(0.1)
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=generator))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


class BrightBlobNet(nn.Module):
    """Fixed weights: feature 0 fires on bright regions (class 0), feature 1 on dark regions (class 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2, bias=False))
        with torch.no_grad():
            self.features[0].weight.copy_(torch.stack([torch.full((1, 3, 3), 1 / 9), torch.full((1, 3, 3), -1 / 9)]))
            self.features[0].bias.copy_(torch.tensor([-0.5, 0.5]))
            self.head[2].weight.copy_(torch.eye(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class TinyViT(nn.Module):
    """Patch embedding by convolution + an attention block: CAM methods must refuse it."""

    class Attention(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.qkv = nn.Linear(dim, 3 * dim)

        def forward(self, tokens: Tensor) -> Tensor:
            q, k, v = self.qkv(tokens).chunk(3, dim=-1)
            return F.scaled_dot_product_attention(q, k, v)

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.attn = self.Attention(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.attn(tokens).mean(1))


def all_hooks_removed(model: nn.Module) -> bool:
    return all(
        not module._forward_hooks and not module._forward_pre_hooks and not module._backward_hooks
        and not getattr(module, "_backward_pre_hooks", {})
        for module in model.modules()
    )


def images(batch: int = 3, channels: int = 2, size: tuple[int, int] = (9, 11), seed: int = 1) -> Tensor:
    return torch.rand(batch, channels, *size, generator=torch.Generator().manual_seed(seed))


def upsample(cam: Tensor) -> Tensor:
    return F.interpolate(cam, size=(9, 11), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("stride", [1, 2])
def test_gradcam_on_a_gap_network_is_the_class_activation_map(stride: int) -> None:
    model = GAPNet(stride=stride).eval()
    x = images()
    target = torch.tensor([0, 3, 1])
    maps = GradCAM(model)(x, target)
    activations = F.conv2d(x, model.conv.weight, model.conv.bias, stride=stride, padding=1)  # all > 0
    assert (activations > 0).all()
    h, w = activations.shape[-2:]
    weights = model.fc.weight.detach()[target] / (h * w)  # ∂y_c/∂A_k = W_ck / (h·w)
    cam = torch.relu((weights[:, :, None, None] * activations).sum(1, keepdim=True))
    assert maps.shape == (3, 1, 9, 11)
    torch.testing.assert_close(maps, upsample(cam), rtol=1e-5, atol=1e-7)


def test_in_place_relu_after_the_layer_does_not_alter_the_captured_activations() -> None:
    """Mixed-sign activations: at the conv layer GradCAM uses its output itself (pre-ReLU) and its gradient;
    the automatic layer is the block output, after the ReLU."""
    model = GAPNet(positive=False).eval()
    x = images()
    target = torch.tensor([1, 0, 2])
    activations = F.conv2d(x, model.conv.weight, model.conv.bias, padding=1)
    assert (activations < 0).any() and (activations > 0).any()
    h, w = activations.shape[-2:]
    grad = (model.fc.weight.detach()[target] / (h * w))[:, :, None, None] * (activations > 0)
    cam = torch.relu((grad.mean((2, 3))[:, :, None, None] * activations).sum(1, keepdim=True))
    torch.testing.assert_close(GradCAM(model, layer="conv")(x, target), cam, rtol=1e-5, atol=1e-7)
    rectified = activations.clamp(min=0)  # after the ReLU the gradient is W_ck / (h·w) everywhere
    weights = model.fc.weight.detach()[target] / (h * w)
    after_relu = torch.relu((weights[:, :, None, None] * rectified).sum(1, keepdim=True))
    auto = GradCAM(model)
    torch.testing.assert_close(auto(x, target), after_relu, rtol=1e-5, atol=1e-7)
    assert auto.layer is model.relu


@pytest.mark.parametrize("stride", [1, 2])
def test_gradcam_plus_plus_closed_form_on_a_gap_network(stride: int) -> None:
    model = GAPNet(stride=stride).eval()
    x = images()
    target = torch.tensor([2, 1, 0])
    maps = GradCAMPlusPlus(model)(x, target)
    activations = F.conv2d(x, model.conv.weight, model.conv.bias, stride=stride, padding=1)
    h, w = activations.shape[-2:]
    grad = (model.fc.weight.detach()[target] / (h * w))[:, :, None, None].expand_as(activations)
    alpha = grad**2 / (2 * grad**2 + activations.sum((2, 3), keepdim=True) * grad**3)
    weights = (alpha * grad.clamp(min=0)).sum((2, 3))
    cam = torch.relu((weights[:, :, None, None] * activations).sum(1, keepdim=True))
    torch.testing.assert_close(maps, upsample(cam), rtol=1e-5, atol=1e-8)
    # GradCAM++ keeps only the positive-gradient channels, unlike GradCAM
    assert not torch.allclose(maps, GradCAM(model)(x, target))


@pytest.mark.parametrize("explainer", [GradCAM, GradCAMPlusPlus])
def test_map_peaks_where_the_evidence_is(explainer: type[GradCAM]) -> None:
    x = 0.2 * torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    x[:, :, 1:7, 2:7] = 1.0  # a bright blob in the top-left quadrant
    model = BrightBlobNet().eval()
    maps = explainer(model)(x, torch.zeros(2, dtype=torch.long))
    quadrant = torch.zeros(16, 16, dtype=torch.bool)
    quadrant[:8, :8] = True
    for image in maps[:, 0]:
        assert image[quadrant].mean() > 10 * image[~quadrant].mean()
        row, col = divmod(int(image.argmax()), 16)
        assert row < 8 and col < 8


def test_layer_selection() -> None:
    model = BrightBlobNet().eval()
    x = torch.rand(2, 1, 10, 10)
    auto = GradCAM(model)
    assert auto.layer is None  # chosen from the first inputs
    maps = auto(x, 0)
    assert auto.layer is model.features  # the block output: after the ReLU that follows the only Conv2d
    by_name = GradCAM(model, layer="features")
    by_module = GradCAM(model, layer=model.features)
    torch.testing.assert_close(by_name(x, 0), maps)
    torch.testing.assert_close(by_module(x, 0), maps)
    torch.testing.assert_close(GradCAM(model, layer="features.1")(x, 0), maps)  # the ReLU: the same map
    at_conv = GradCAM(model, layer="features.0")(x, 0)
    assert at_conv.shape == (2, 1, 10, 10)
    last = GradCAM(GAPNet())
    last(images(), 0)
    assert isinstance(last.layer, nn.ReLU)
    with pytest.raises(ValueError, match="no sub-module named 'features.9'"):
        GradCAM(model, layer="features.9")
    with pytest.raises(ValueError, match="not a sub-module"):
        GradCAM(model, layer=nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="B×K×h×w"):
        GradCAM(model, layer="head.2")(x, 0)


def test_models_without_a_usable_convolution_raise_clearly() -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        GradCAM(mlp)
    with pytest.raises(ValueError, match="transformer"):
        GradCAMPlusPlus(TinyViT())
    # an explicit layer is the user's responsibility: the patch embedding is a B×K×h×w map
    maps = GradCAM(TinyViT(), layer="embed")(torch.rand(1, 3, 8, 8))
    assert maps.shape == (1, 1, 8, 8)
    # TorchScript runs without Python hooks: say so (not "no nn.Conv2d") and name the way out
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()
    scripted = torch.jit.trace(net, torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="TorchScript.*--model PKG.MODULE:FACTORY"):
        GradCAM(scripted)(torch.rand(1, 3, 8, 8))


def test_hooks_are_removed_after_success_and_when_the_model_raises() -> None:
    model = GAPNet()
    explainer = GradCAM(model)
    explainer(images(), torch.tensor([0, 1, 2]))
    assert all_hooks_removed(model)

    class Exploding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3)

        def forward(self, x: Tensor) -> Tensor:
            self.conv(x)
            raise RuntimeError("boom")

    broken = Exploding()
    with pytest.raises(RuntimeError, match="boom"):
        GradCAMPlusPlus(broken)(images())
    assert all_hooks_removed(broken)
    with pytest.raises(ValueError, match="out of range"):
        GradCAM(model)(images(), torch.tensor([0, 1, 9]))
    assert all_hooks_removed(model)


def test_batch_size_target_none_mode_and_frozen_weights() -> None:
    model = GAPNet(positive=False)
    model.train()
    x = images(batch=5)
    reference = GradCAM(model)(x)
    assert model.training  # restored
    predicted = model.eval()(x).argmax(1)
    model.train()
    torch.testing.assert_close(GradCAM(model)(x, predicted), reference)
    for batch_size in (1, 3, 7):
        torch.testing.assert_close(GradCAM(model, batch_size=batch_size)(x), reference, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(GradCAMPlusPlus(model, batch_size=batch_size)(x),
                                   GradCAMPlusPlus(model)(x), rtol=1e-5, atol=1e-7)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    torch.testing.assert_close(GradCAM(model)(x), reference)
    assert all(parameter.grad is None for parameter in model.parameters())
    assert (reference >= 0).all()


def test_invalid_inputs() -> None:
    model = GAPNet().eval()
    with pytest.raises(ValueError, match="batch_size"):
        GradCAM(model, batch_size=0)
    with pytest.raises(ValueError, match="B×C×H×W"):
        GradCAM(model)(torch.rand(2, 9, 9))
    with pytest.raises(ValueError, match="NaN"):
        GradCAM(model)(torch.full((1, 2, 9, 9), float("nan")))
    with pytest.raises(TypeError, match="nn.Module"):
        GradCAM("resnet")  # type: ignore[arg-type]


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck: 1×1, 3×3, 1×1 conv-BN with one shared in-place ReLU (called three
    times) and the residual addition before the last ReLU."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TorchvisionLikeResNet50(nn.Module):
    """torchvision's ``resnet50`` layout (stem with max pool, ``layer1``..``layer4`` of [3, 4, 6, 3]
    bottlenecks, ``avgpool``, ``fc``) at a tiny base width."""

    def __init__(self, width: int = 4, classes: int = 5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._layer(width, 3)
        self.layer2 = self._layer(2 * width, 4, stride=2)
        self.layer3 = self._layer(4 * width, 6, stride=2)
        self.layer4 = self._layer(8 * width, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32 * width, classes)
        for module in self.modules():  # non-trivial BatchNorm statistics
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)

    def _layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@pytest.mark.parametrize("explainer", [GradCAM, GradCAMPlusPlus])
def test_automatic_layer_is_layer4_of_a_torchvision_resnet50(explainer: type[GradCAM]) -> None:
    from freqlens.attribution import count_passes
    from freqlens.attribution.gradcam import block_output_layer

    model = TorchvisionLikeResNet50().eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    assert block_output_layer(model, x) == "layer4"  # not layer4.2.conv3, the last bare Conv2d
    auto = explainer(model)
    with count_passes(model) as count:
        maps = auto(x, torch.tensor([1, 3]))
    assert (count.forward, count.backward) == (2, 2)  # the choice of the layer is not counted
    assert auto.layer is model.layer4
    torch.testing.assert_close(maps, explainer(model, layer="layer4")(x, torch.tensor([1, 3])))
    torch.testing.assert_close(maps, explainer(model, layer=model.layer4[-1])(x, torch.tensor([1, 3])))
    bare = explainer(model, layer="layer4.2.conv3")(x, torch.tensor([1, 3]))  # the old rule: before BN, add, ReLU
    assert not torch.allclose(bare, maps)
    assert all_hooks_removed(model)


@pytest.mark.parametrize("name, size, layer", [
    ("lenet", 28, "body.4"),  # the ReLU after the last convolution, before the max pool
    ("vgg11", 32, "body.27"),  # the ReLU after the last conv + BN (2×2), before the last max pool (1×1)
    ("resnet18", 32, "stages"),  # the output of the last stage: its last block after BN, addition, ReLU
    ("resnet_small", 32, "stages"),
    ("convnext_tiny", 32, "stages.2"),  # the last stage of ConvNeXt blocks (after their residual addition)
])
def test_automatic_layer_on_the_zoo_architectures(name: str, size: int, layer: str) -> None:
    from freqlens.attribution.gradcam import block_output_layer
    from freqlens.models import build

    model = build(name, in_channels=3, num_classes=10, image_size=size).eval()
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    assert block_output_layer(model, x) == layer
    maps = GradCAM(model)(x, torch.tensor([0, 1]))
    torch.testing.assert_close(maps, GradCAM(model, layer=layer)(x, torch.tensor([0, 1])))
    if name.startswith("resnet"):  # the same tensor as the last block's output
        last_block = model.stages[-1][-1]
        torch.testing.assert_close(maps, GradCAM(model, layer=last_block)(x, torch.tensor([0, 1])))
