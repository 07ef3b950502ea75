import pytest
import torch

from sklearn_smlm.nn import MapDataset, SubPixelCNN, fold_subpixel_head


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_paper_architecture_shapes_and_size():
    net = SubPixelCNN(upsampling="subpixel")
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 9 and all(c.kernel_size == (3, 3) for c in convs)
    assert net.upsample[0].out_channels == 32 * 49
    assert net.head.kernel_size == (1, 1)
    out = net(torch.zeros(2, 1, 5, 6))
    assert out.shape == (2, 1, 35, 42)


def test_folded_head_computes_the_same_map():
    net = SubPixelCNN(n_layers=3, n_channels=8, upscaling=3, upsampling="subpixel")
    folded = fold_subpixel_head(net)
    assert folded.head[0].out_channels == 9
    x = torch.randn(2, 1, 7, 5)
    with torch.no_grad():
        expected, got = net(x), folded(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    n_sub = sum(p.numel() for p in net.parameters())
    n_fold = sum(p.numel() for p in folded.parameters())
    assert n_fold < n_sub


def test_fold_needs_subpixel_network():
    with pytest.raises(ValueError, match="subpixel"):
        fold_subpixel_head(SubPixelCNN(n_layers=1, n_channels=2, upsampling="folded"))


def test_multistage_upscaling():
    net = SubPixelCNN(n_layers=2, n_channels=4, upscaling=8, upsampling="multistage")
    assert net(torch.zeros(1, 1, 4, 4)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="product"):
        SubPixelCNN(upscaling=7, upsampling="multistage", stages=(2, 2))
    with pytest.raises(ValueError, match="upsampling"):
        SubPixelCNN(upsampling="bilinear")


def test_map_stays_float32_under_bf16_autocast():
    net = SubPixelCNN(n_layers=2, n_channels=4, upscaling=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.randn(1, 1, 4, 4))
    assert out.dtype == torch.float32


def test_dataset_augments_frames_and_targets_together():
    frames = torch.zeros(1, 4, 4)
    frames[0, 0, 1] = 1.0  # a spot at row 0, col 1
    targets = torch.zeros(1, 12, 12)
    targets[0, 1, 4] = 1.0  # its map pixel at r = 3: (0*3+1, 1*3+1)
    data = MapDataset(frames, targets, augment=True, seed=0)
    for _ in range(20):
        x, y = data[0]
        (r, c) = torch.nonzero(x[0])[0].tolist()
        (ry, cy) = torch.nonzero(y[0])[0].tolist()
        assert (ry, cy) == (3 * r + 1, 3 * c + 1)
