"""Parameter sets that make the simulator look like the reference data sets."""

__all__ = ["PRESETS", "ASTIGMATIC_2016"]

#: Astigmatic PSF of the 3D presets: :func:`defocus_width` parameters per axis
#: (x in focus 250 nm below the focal plane, y 250 nm above, in-focus width
#: that of FWHM 258 nm, focal depth 450 nm). Assumed, not measured: the
#: 2016 challenge's astigmatic PSF is not published as numbers in our
#: sources; it widens each axis to about 2.4 times its focus width at the
#: far end of +-750 nm, as astigmatic set-ups of that range do.
ASTIGMATIC_2016 = {
    "x": {"sigma0_nm": 109.65, "focus_nm": -250.0, "depth_nm": 450.0},
    "y": {"sigma0_nm": 109.65, "focus_nm": 250.0, "depth_nm": 450.0},
}

#: Preset name -> keyword arguments of :class:`PAFPSimulator`. Sources:
#:
#: ``"bt_hd_2013"`` -- calibrated on ``data/bt_hd_recreated`` (a ThunderSTORM
#: re-simulation of the 2013 challenge's Bundled Tubes High Density; 361
#: frames, 81,178 true emitters). Measured there (see the simulation tests and
#: ``benchmarks/bench_simulator.py``): emitters per frame 176-267, mean 224.9,
#: standard deviation 15.6 (Poisson) -> 224.9 / 40.96 um^2 = 5.49 per um^2;
#: pixels farther than 1.2 um from every emitter: mean 140.0 ADU, variance
#: 160.7, skewness 0.49, excess kurtosis 0.32, minimum 102 -> offset 100 ADU,
#: EM-amplified background (variance = 2 * gain * (mean - offset), skewness
#: 2.1 / sqrt(electrons)) of 20 electrons at 2 ADU per electron, read noise
#: negligible; PSF width from a non-negative least-squares fit of every frame
#: with the true positions and a grid of widths: residual smallest at sigma
#: 110 nm (the 2013 challenge's FWHM 258 nm); per-emitter photons from the
#: same fit on emitters without a neighbour within 350 nm: mean 1504,
#: standard deviation 288 electrons, flat between about 1000 and 2000 ->
#: uniform in [1000, 2000] (ThunderSTORM's intensity range). ThunderSTORM has
#: no quantum efficiency, so QE is 1 and the photon numbers are electrons.
#: Emitters there follow 8 tubes, partly bundled; the paper trained on
#: uniformly placed emitters of the same density, which is this preset's
#: default. Pass ``structure="filaments"`` for look-alike movies: with 10
#: random filaments (chosen to match the 50/75/95/99th percentiles of the
#: frames, as the random curves are less bundled) the pixel percentiles
#: match those of frames.tif within a few percent (numbers in
#: ``benchmarks/results/simulator.md``).
#:
#: ``"mt0_n1_hd_2016"`` and ``"mt0_n2_hd_2016"`` -- camera from the 2016
#: challenge description (method.md section 9: EMCCD, QE 0.9, read noise
#: 74.4 e-, EM gain 300, 45 e- per ADU, baseline 100 ADU; 100 nm pixels;
#: 1500 nm thick sample), PSF FWHM 258.21 nm in focus widening with defocus.
#: The photon and background numbers and the density are NOT published in
#: our sources: they are assumptions chosen for a high (N1) and a low (N2)
#: signal-to-noise ratio of a high-density (HD) set; adjust with overrides.
#:
#: ``"low_density"`` -- a sparse reference: 0.3 emitters per um^2 (about 12
#: per 64 x 64 frame), otherwise the 2013 camera and PSF.
#:
#: ``"mt0_n1_as_2016"``, ``"mt0_n2_as_2016"`` -- the astigmatic 3D look-alikes
#: of the 2016 challenge's MT0.N1.AS / MT0.N2.AS: the HD presets' camera,
#: photons, background and density (high density, high and low SNR) with the
#: astigmatic PSF :data:`ASTIGMATIC_2016` over a 1.5 um range (+-750 nm).
#:
#: ``"low_density_as"`` -- ``"low_density"`` (0.3 emitters per um^2) with the
#: astigmatic PSF over +-750 nm: the reference for 3D precision.
PRESETS = {
    "bt_hd_2013": {
        "frame_shape": (64, 64),
        "pixel_size_nm": 100.0,
        "density_per_um2": 5.49,
        "structure": "uniform",
        "n_filaments": 10,
        "filament_width_nm": 30.0,
        "photons": 1500.0,
        "photon_distribution": "uniform",
        "photon_spread": 1.0 / 3.0,
        "psf_fwhm_nm": 258.0,
        "background_photons": 20.0,
        "camera": "emccd",
        "quantum_efficiency": 1.0,
        "em_gain": 100.0,
        "read_noise_e": 0.0,
        "e_per_adu": 50.0,
        "baseline_adu": 100.0,
        "saturation_adu": 65535.0,
    },
    "mt0_n1_hd_2016": {
        "frame_shape": (64, 64),
        "pixel_size_nm": 100.0,
        "density_per_um2": 2.0,
        "structure": "uniform",
        "n_filaments": 3,
        "filament_width_nm": 25.0,
        "photons": 3000.0,
        "photon_distribution": "lognormal",
        "photon_spread": 0.5,
        "psf_fwhm_nm": 258.21,
        "z_range_nm": (-750.0, 750.0),
        "focal_depth_nm": 400.0,
        "background_photons": 20.0,
        "camera": "emccd",
        "quantum_efficiency": 0.9,
        "em_gain": 300.0,
        "read_noise_e": 74.4,
        "e_per_adu": 45.0,
        "baseline_adu": 100.0,
        "saturation_adu": 65535.0,
    },
    "mt0_n2_hd_2016": {
        "frame_shape": (64, 64),
        "pixel_size_nm": 100.0,
        "density_per_um2": 2.0,
        "structure": "uniform",
        "n_filaments": 3,
        "filament_width_nm": 25.0,
        "photons": 1000.0,
        "photon_distribution": "lognormal",
        "photon_spread": 0.5,
        "psf_fwhm_nm": 258.21,
        "z_range_nm": (-750.0, 750.0),
        "focal_depth_nm": 400.0,
        "background_photons": 100.0,
        "camera": "emccd",
        "quantum_efficiency": 0.9,
        "em_gain": 300.0,
        "read_noise_e": 74.4,
        "e_per_adu": 45.0,
        "baseline_adu": 100.0,
        "saturation_adu": 65535.0,
    },
    "low_density": {
        "frame_shape": (64, 64),
        "pixel_size_nm": 100.0,
        "density_per_um2": 0.3,
        "structure": "uniform",
        "photons": 1500.0,
        "photon_distribution": "lognormal",
        "photon_spread": 0.4,
        "psf_fwhm_nm": 258.0,
        "background_photons": 20.0,
        "camera": "emccd",
        "quantum_efficiency": 1.0,
        "em_gain": 100.0,
        "read_noise_e": 0.0,
        "e_per_adu": 50.0,
        "baseline_adu": 100.0,
        "saturation_adu": 65535.0,
    },
}

for _name, _source in (
    ("mt0_n1_as_2016", "mt0_n1_hd_2016"),
    ("mt0_n2_as_2016", "mt0_n2_hd_2016"),
    ("low_density_as", "low_density"),
):
    PRESETS[_name] = {
        **PRESETS[_source],
        "z_range_nm": (-750.0, 750.0),
        "calibration": ASTIGMATIC_2016,
    }
    PRESETS[_name].pop("focal_depth_nm", None)
del _name, _source
