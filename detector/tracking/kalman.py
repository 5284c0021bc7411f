"""A constant-velocity Kalman filter on boxes, vectorised over tracks (NumPy only).

The state of one track is ``(cx, cy, a, h, vcx, vcy, va, vh)``: the box centre, its aspect ratio
(width / height), its height, and their velocities per frame. A detection measures the first four
directly. The noise scales with the box height, so a near (big) object may move more pixels per
frame than a far one. The weights are those of ByteTrack and DeepSORT (1/20 of the height for
position, 1/160 for velocity), so that our tracker behaves like Ultralytics' ByteTrack.

Written here rather than taken from a library: the filter is forty lines of NumPy, and the ones that
exist (filterpy, Ultralytics') either track one object at a time or come with torch.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

_NDIM = 4
# x_{t+1} = F x_t: each of the four quantities moves by its velocity in one frame.
_F = np.eye(2 * _NDIM)
_F[:_NDIM, _NDIM:] = np.eye(_NDIM)


def xyxy_to_xyah(xyxy: npt.ArrayLike) -> Array:
    """Boxes (N, 4) as corners -> (N, 4) as centre, aspect ratio and height."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = b[:, 0] + w / 2, b[:, 1] + h / 2, w / h, h
    return out


def xyah_to_xyxy(xyah: npt.ArrayLike) -> Array:
    """Boxes (N, >= 4) whose first four columns are centre, aspect ratio and height -> (N, 4) corners."""
    s = np.atleast_2d(np.asarray(xyah, dtype=np.float64))
    half_h = s[:, 3] / 2
    half_w = s[:, 2] * half_h
    out = np.empty((len(s), 4))
    out[:, 0], out[:, 1] = s[:, 0] - half_w, s[:, 1] - half_h
    out[:, 2], out[:, 3] = s[:, 0] + half_w, s[:, 1] + half_h
    return out


class BoxKalman:
    """Predict and correct many box states at once: ``mean`` (N, 8), ``covariance`` (N, 8, 8)."""

    def __init__(self, std_position: float = 1.0 / 20, std_velocity: float = 1.0 / 160) -> None:
        self.std_position = std_position
        self.std_velocity = std_velocity

    def _stds(self, height: Array, position: float, velocity: float, aspect: tuple[float, float]) -> Array:
        """Per-track standard deviations (N, 8); the aspect ratio's are fixed, the rest scale with h."""
        out = np.empty((len(height), 8))
        out[:, [0, 1, 3]] = (position * self.std_position * height)[:, None]
        out[:, [4, 5, 7]] = (velocity * self.std_velocity * height)[:, None]
        out[:, 2], out[:, 6] = aspect
        return out

    def initiate(self, xyah: Array) -> tuple[Array, Array]:
        """New states from measurements (N, 4): at rest, with a wide velocity uncertainty."""
        z = np.asarray(xyah, dtype=np.float64).reshape(-1, 4)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        std = self._stds(z[:, 3], 2.0, 10.0, (1e-2, 1e-5))
        return mean, _diag(np.square(std))

    def predict(self, mean: Array, covariance: Array) -> tuple[Array, Array]:
        """One frame ahead: the box moves by its velocity and grows less certain."""
        if not len(mean):
            return mean, covariance
        q = _diag(np.square(self._stds(mean[:, 3], 1.0, 1.0, (1e-2, 1e-5))))
        return mean @ _F.T, _F @ covariance @ _F.T + q

    def update(self, mean: Array, covariance: Array, xyah: Array) -> tuple[Array, Array]:
        """Correct predicted states (N, 8) with their matched measurements (N, 4)."""
        if not len(mean):
            return mean, covariance
        std = np.empty((len(mean), _NDIM))
        std[:, [0, 1, 3]] = (self.std_position * mean[:, 3])[:, None]
        std[:, 2] = 1e-1
        r = _diag(np.square(std))
        s = covariance[:, :_NDIM, :_NDIM] + r  # innovation covariance (N, 4, 4)
        cross = covariance[:, :, :_NDIM]  # P H^T (N, 8, 4)
        gain = np.linalg.solve(s, cross.transpose(0, 2, 1)).transpose(0, 2, 1)  # P H^T S^-1
        innovation = np.asarray(xyah, dtype=np.float64).reshape(-1, 4) - mean[:, :_NDIM]
        new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        new_cov = covariance - gain @ s @ gain.transpose(0, 2, 1)
        return new_mean, new_cov


def _diag(values: Array) -> Array:
    """(N, k) -> (N, k, k) diagonal matrices."""
    n, k = values.shape
    out = np.zeros((n, k, k))
    out[:, np.arange(k), np.arange(k)] = values
    return out
