"""Simulation of PALM/STORM movies: emitters, PSF, background, camera, augmentation."""

from ._augment import SHAPE_PRESERVING, augment_dihedral, dihedral_positions
from ._background import background_photons_map, gradient_profile
from ._beads import astigmatic_widths, simulate_bead_stack
from ._camera import em_register, emccd_adu, emccd_electrons, scmos_adu
from ._emitters import Structure, blink_expand, make_filaments
from ._presets import PRESETS
from ._psf import (
    defocus_width,
    fwhm_to_sigma,
    integrated_gaussian_1d,
    render_spots,
    sigma_at_z,
)
from ._simulator import BLOCK_FRAMES, PAFPSimulator

__all__ = [
    "BLOCK_FRAMES",
    "PAFPSimulator",
    "PRESETS",
    "SHAPE_PRESERVING",
    "Structure",
    "astigmatic_widths",
    "augment_dihedral",
    "defocus_width",
    "background_photons_map",
    "blink_expand",
    "dihedral_positions",
    "em_register",
    "emccd_adu",
    "emccd_electrons",
    "fwhm_to_sigma",
    "gradient_profile",
    "integrated_gaussian_1d",
    "make_filaments",
    "render_spots",
    "scmos_adu",
    "simulate_bead_stack",
    "sigma_at_z",
]
