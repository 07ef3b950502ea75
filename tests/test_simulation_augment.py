"""Dihedral augmentation of frames and positions (sklearn_smlm.simulation)."""

import numpy as np
import pandas as pd
import pytest

from sklearn_smlm.simulation import (
    PAFPSimulator,
    augment_dihedral,
    dihedral_positions,
    render_spots,
)

PX = 100.0


def _spot_frame(shape, x_nm, y_nm):
    img = render_spots(
        1,
        shape,
        np.array([0]),
        np.array([x_nm / PX]),
        np.array([y_nm / PX]),
        1.0,
        1.0,
        np.array([1000.0]),
        7,
        method="sparse",
    )
    return img


@pytest.mark.parametrize("shape", [(15, 15), (14, 19)])
def test_spot_stays_on_its_position_for_every_transform(shape):
    # off-centre and sub-pixel, but 6 sigma from the borders so that the
    # centre of mass of the pixelated spot is its position (to 1e-3 nm)
    x_nm, y_nm = 830.0, 640.0
    X = _spot_frame(shape, x_nm, y_nm)
    ks = range(8) if shape[0] == shape[1] else (0, 2, 4, 6)
    for k in ks:
        Xt, yt = augment_dihedral(X, [np.array([[x_nm, y_nm]])], pixel_size_nm=PX, k=k)
        frame = Xt[0]
        # the transformed spot is the spot rendered at the transformed position
        expected = _spot_frame(frame.shape, yt[0][0, 0], yt[0][0, 1])[0]
        np.testing.assert_allclose(frame, expected, atol=1e-9)
        # and its centre of mass (pixel centres at index + 0.5) is the position
        rows, cols = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]] + 0.5
        w = frame / frame.sum()
        assert (w * cols).sum() * PX == pytest.approx(yt[0][0, 0], abs=1e-3)
        assert (w * rows).sum() * PX == pytest.approx(yt[0][0, 1], abs=1e-3)


def test_eight_transforms_are_distinct_and_invertible_by_hand():
    shape = (4, 4)
    p = np.array([[130.0, 70.0, -5.0]])
    images = {tuple(dihedral_positions(p, k, shape, PX)[0, :2]) for k in range(8)}
    assert len(images) == 8
    # quarter turn of a 4x4 field: (u, v) -> (v, 4 - u); z kept
    np.testing.assert_allclose(
        dihedral_positions(p, 1, shape, PX), [[70.0, 270.0, -5.0]]
    )
    # flip: u -> W - u
    np.testing.assert_allclose(
        dihedral_positions(p, 4, shape, PX), [[270.0, 70.0, -5.0]]
    )


def test_quarter_turn_of_non_square_stack_swaps_shape_or_is_refused():
    X = np.zeros((2, 3, 5))
    y = [np.empty((0, 2)), np.array([[50.0, 50.0]])]
    Xt, yt = augment_dihedral(X, y, pixel_size_nm=PX, k=0)
    assert Xt.shape == (2, 3, 5)
    with pytest.raises(ValueError, match="quarter turn"):
        augment_dihedral(X, y, pixel_size_nm=PX, k=1)
    with pytest.raises(ValueError, match="square"):
        augment_dihedral(X, y, pixel_size_nm=PX, k="all")
    with pytest.raises(ValueError, match="0..7"):
        augment_dihedral(X, y, pixel_size_nm=PX, k=8)


def test_all_variants_and_table_form():
    sim = PAFPSimulator(frame_shape=(8, 8), density_per_um2=5.0, random_state=0)
    X, table = sim.simulate(2, return_table=True)
    X8, t8 = augment_dihedral(X, table, pixel_size_nm=PX, k="all")
    assert X8.shape == (16, 8, 8)
    assert len(t8) == 8 * len(table)
    assert set(t8["frame"]) <= set(range(16))
    np.testing.assert_array_equal(X8[2 * 3 + 1], np.rot90(X[1], 3))
    # the table form moves positions exactly like the list form
    Xl, yl = augment_dihedral(X, sim.simulate(2)[1], pixel_size_nm=PX, k=5)
    Xt, tt = augment_dihedral(X, table, pixel_size_nm=PX, k=5)
    np.testing.assert_array_equal(Xl, Xt)
    np.testing.assert_allclose(np.concatenate(yl), tt[["x_nm", "y_nm"]].to_numpy())
    assert isinstance(tt, pd.DataFrame) and "photons" in tt


def test_random_per_frame_transform_is_seeded_and_consistent():
    shape = (10, 10)
    pos = [
        np.array([[120.0, 730.0]]),
        np.array([[480.0, 90.0]]),
        np.array([[20.0, 950.0]]),
    ]
    X = np.concatenate([_spot_frame(shape, *p[0]) for p in pos])
    Xa, ya = augment_dihedral(X, pos, pixel_size_nm=PX, random_state=1)
    Xb, yb = augment_dihedral(X, pos, pixel_size_nm=PX, random_state=1)
    np.testing.assert_array_equal(Xa, Xb)
    for f in range(3):
        expected = _spot_frame(shape, *ya[f][0])[0]
        np.testing.assert_allclose(Xa[f], expected, atol=1e-9)


@pytest.mark.parametrize("shape", [(12, 12), (10, 14)])
def test_simulator_augment_moves_frames_and_truth_together(shape):
    params = dict(frame_shape=shape, density_per_um2=3.0, random_state=3)
    Xn, yn = PAFPSimulator(**params).simulate(40)
    Xa, ya = PAFPSimulator(augment=True, **params).simulate(40)
    # the transform is drawn after everything else: each augmented frame is a
    # dihedral image of the plain frame, and its truth moved by the same k
    used = set()
    ks = range(8) if shape[0] == shape[1] else (0, 2, 4, 6)
    for f in range(40):
        matches = [
            k
            for k in ks
            if np.array_equal(
                augment_dihedral(Xn[f : f + 1], [yn[f]], pixel_size_nm=PX, k=k)[0][0],
                Xa[f],
            )
        ]
        assert len(matches) == 1
        k = matches[0]
        used.add(k)
        np.testing.assert_allclose(ya[f], dihedral_positions(yn[f], k, shape, PX))
    assert used == set(ks)


def test_astigmatic_augmentation_keeps_axes():
    params = dict(
        frame_shape=(12, 12),
        density_per_um2=3.0,
        z_range_nm=(-400.0, 400.0),
        astigmatism_nm=200.0,
        random_state=4,
    )
    Xn, yn = PAFPSimulator(**params).simulate(32)
    Xa, ya = PAFPSimulator(augment=True, **params).simulate(32)
    for f in range(32):
        matches = [
            k
            for k in range(8)
            if np.array_equal(
                augment_dihedral(Xn[f : f + 1], [yn[f]], pixel_size_nm=PX, k=k)[0][0],
                Xa[f],
            )
        ]
        assert matches and matches[0] in (0, 2, 4, 6)
