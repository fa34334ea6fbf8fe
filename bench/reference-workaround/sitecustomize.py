"""Loaded by bench/padim.ts for the reference's `--mode fast` only (PYTHONPATH), never by kensa.

On Magnetic Tile Defects, torch.linalg.inv over the reference's (3136, 176, 176) float64 covariances
fails inside PyTorch ("Pivots given to lu_solve must all be greater or equal to 1", MKL DLASWP parameter
errors; torch 2.13.0 and 2.14.1, also in batches of 256 and with one MKL thread), while numpy inverts the
same matrices (the reference's faithful mode does). This wrapper hands float64 CPU batches to
numpy.linalg.inv — the same float64 inverse through numpy's LAPACK — so that fast mode can be measured.
"""
import numpy as np
import torch

_inv = torch.linalg.inv


def _numpy_inv(a, *args, **kwargs):
    if a.dtype == torch.float64 and a.device.type == "cpu" and not args and not kwargs:
        return torch.from_numpy(np.linalg.inv(a.numpy()))
    return _inv(a, *args, **kwargs)


torch.linalg.inv = _numpy_inv
