"""Exact earth mover's distance between two equal-size point sets.

With uniform weights and the same number of points on both sides, an optimal
transport plan can always be chosen to be a permutation (Birkhoff–von Neumann),
so W1 is the mean cost of an optimal assignment. ``assignment`` solves that
linear assignment problem exactly with a shortest-augmenting-path
(Hungarian / Jonker–Volgenant) solver in numpy; ``wasserstein1`` builds the
Euclidean cost matrix and averages the matched distances.

Used by ``ganlab.metrics.toy`` to score generators on the 2-D toy datasets.
The solve is O(n^3) in the worst case; on one CPU core 1000 points take about
2 s and 2000 points about 10 s, so evaluation batches of ~1000 are the norm::

    from ganlab.metrics.ot import wasserstein1
    w1 = wasserstein1(fake, real)  # (n, d) arrays or tensors, equal n
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor

# Upper bound on the elements of the (rows, n, d) difference block materialised
# at once when building the cost matrix; 4M float64 values is 32 MB.
_MAX_BLOCK_ELEMENTS = 4_000_000


def assignment(cost: np.ndarray) -> np.ndarray:
    """Solve the linear assignment problem for a square cost matrix.

    Returns ``col`` with ``col[i]`` the column assigned to row ``i``; ``col`` is a
    permutation of ``range(n)`` minimising ``cost[arange(n), col].sum()``.

    The solver keeps dual potentials ``u`` (rows) and ``v`` (columns) with all
    reduced costs ``cost - u[:, None] - v[None, :]`` non-negative and zero on
    matched pairs. A column reduction plus a greedy pass matches most rows on
    tight edges; each remaining free row is then matched by a Dijkstra search
    over reduced costs for the nearest free column, followed by a dual update
    and an augmentation along the found path. The Dijkstra relaxation of a row
    is one vectorised numpy pass over all columns, so the Python loop runs once
    per scanned column rather than once per matrix entry.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"assignment needs a square cost matrix, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("assignment needs a finite cost matrix")

    n = cost.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    u = np.zeros(n)
    v = cost.min(axis=0)
    col4row = np.full(n, -1, dtype=np.int64)
    row4col = np.full(n, -1, dtype=np.int64)

    # Under the initial duals (u = 0, v = column minima) every column's cheapest
    # entry has zero reduced cost, so matching it keeps the optimality
    # conditions; a row that is cheapest for several columns takes the first.
    for j, i in enumerate(cost.argmin(axis=0)):
        if col4row[i] < 0:
            col4row[i], row4col[j] = j, i

    for free_row in np.flatnonzero(col4row < 0):
        _augment(cost, u, v, col4row, row4col, int(free_row))
    return col4row


def _augment(
    cost: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    col4row: np.ndarray,
    row4col: np.ndarray,
    free_row: int,
) -> None:
    """Match ``free_row`` along a shortest augmenting path, updating all arrays in place.

    Follows the formulation of Crouse (2016), "On implementing 2D rectangular
    assignment algorithms", which defers the dual update to the end of the
    search so that each step only relaxes the newly reached row.
    """
    n = cost.shape[0]
    dist = np.full(n, np.inf)  # tentative shortest-path length to each unscanned column
    pred = np.full(n, -1, dtype=np.int64)  # row from which each column was last reached
    # +inf on scanned columns so that a relaxation can never lower them again.
    scanned_penalty = np.zeros(n)
    scanned_dist = np.zeros(n)  # final path length of every scanned column
    scanned_cols: list[int] = []
    visited_rows = [free_row]

    row, path_len = free_row, 0.0
    while True:
        candidate = (path_len - u[row]) + cost[row] - v + scanned_penalty
        shorter = candidate < dist
        dist[shorter] = candidate[shorter]
        pred[shorter] = row

        col = int(dist.argmin())
        path_len = float(dist[col])
        scanned_cols.append(col)
        scanned_dist[col] = path_len
        dist[col] = np.inf
        scanned_penalty[col] = np.inf
        if row4col[col] < 0:
            break
        row = int(row4col[col])
        visited_rows.append(row)

    # Dual update: keeps reduced costs non-negative and makes the path tight.
    rows = np.asarray(visited_rows[1:], dtype=np.int64)
    cols = np.asarray(scanned_cols, dtype=np.int64)
    u[free_row] += path_len
    u[rows] += path_len - scanned_dist[col4row[rows]]
    v[cols] -= path_len - scanned_dist[cols]

    # Flip matched and unmatched edges along the path, from the free column back.
    while True:
        row = int(pred[col])
        row4col[col] = row
        col4row[row], col = col, col4row[row]
        if row == free_row:
            break


def wasserstein1(x: ArrayLike, y: ArrayLike) -> float:
    """Exact W1 (earth mover's) distance between two uniform point clouds.

    ``x`` and ``y`` are ``(n, d)`` numpy arrays or torch tensors on any device
    and of any dtype; they are compared in float64 with the Euclidean ground
    cost. Both sets must be non-empty and of equal size.
    """
    x_np, y_np = _as_points(x, "x"), _as_points(y, "y")
    if x_np.shape[0] != y_np.shape[0]:
        raise ValueError(
            f"wasserstein1 needs point sets of equal size, got {x_np.shape[0]} and {y_np.shape[0]}"
        )
    if x_np.shape[1] != y_np.shape[1]:
        raise ValueError(
            f"wasserstein1 needs points of equal dimension, got {x_np.shape[1]} and {y_np.shape[1]}"
        )
    cost = pairwise_distances(x_np, y_np)
    cols = assignment(cost)
    return float(cost[np.arange(len(cols)), cols].mean())


def pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix between the rows of ``x`` (n, d) and ``y`` (m, d).

    Computed from explicit differences rather than ``|x|^2 + |y|^2 - 2 x.y``,
    which cancels catastrophically for nearby points and would make the
    distance of a set to itself come out slightly positive. Rows are processed
    in blocks to bound memory.
    """
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    rows_per_block = max(1, _MAX_BLOCK_ELEMENTS // max(1, m * d))
    out = np.empty((n, m))
    for start in range(0, n, rows_per_block):
        diff = x[start : start + rows_per_block, None, :] - y[None, :, :]
        out[start : start + rows_per_block] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    return out


def _as_points(points: ArrayLike, name: str) -> np.ndarray:
    """Convert a non-empty ``(n, d)`` array or tensor to a float64 numpy array."""
    if isinstance(points, torch.Tensor):
        points = points.detach().to(device="cpu", dtype=torch.float64).numpy()
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {points.shape}")
    if points.shape[0] == 0:
        raise ValueError(f"{name} is empty; wasserstein1 needs at least one point per set")
    return points
