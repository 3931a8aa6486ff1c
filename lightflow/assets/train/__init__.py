"""Training scripts for lightflow's embedded default model (``builtin:digits``).

The model is a tiny Stable-Diffusion-shaped text-to-image model trained on
scikit-learn's bundled 8x8 digits, upscaled to 32x32 and coloured. Everything here is
seeded and reproducible::

    python -m lightflow.assets.train.train --out lightflow/assets/digits
"""
