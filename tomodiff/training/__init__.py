"""Training diffusion priors: data (real CT volumes, simulated scan pairs), the loop, held-out scores.

Above :mod:`tomodiff.recon` in the layers: a conditional prior is trained on classical
reconstructions (FBP) of simulated scans. ``tomodiff train-prior`` runs :func:`train.train`;
the trained weights load through :mod:`tomodiff.priors`, which never needs this package.
"""
