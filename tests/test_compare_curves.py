"""Curves of `ganlab compare`: reading every scalar point of real event files, the band over seeds,
the figures, and the TensorBoard runs as a real TensorBoard server serves them."""

from __future__ import annotations

import importlib.util
import json
import math
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.collections import PolyCollection
from scipy import stats
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter

from ganlab.compare.curves import Band, curve_figure, plot_curves, run_folder, seed_band, write_tensorboard
from ganlab.compare.scalars import Series, event_files, read_scalars
from ganlab.logger.tensorboard import TensorBoard

# ----------------------------------------------------------------------------------- read_scalars


def first_value(step: int) -> float:
    return 100.0 + step


def resumed_value(step: int) -> float:
    return 200.0 + step


def write_resumed_run(run_dir: Path) -> None:
    """A run as ganlab writes one: scalars, histograms and pictures; stopped after step 12, resumed from
    a checkpoint at step 5 (purge_step=6), which logs steps 6..10 again and stops; Loss/D logged
    twice at step 10. Steps 11 and 12 of the first process are purged, though not logged again."""
    tb = TensorBoard(run_dir)
    tb.hparams({"objective": "wgan_gp"}, ["Metrics/w1"])
    for step in range(1, 13):
        tb.scalars(step, {"Loss/D": first_value(step), "Loss/G": -first_value(step), "Other/x": 1.0})
        tb.histograms(step, {"Critic/scores": torch.randn(64)})
        if step % 4 == 0:
            tb.image("Samples", step, torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8))
            tb.scalars(step, {"Metrics/w1": float("nan") if step == 4 else 0.5})
    tb.close()
    tb = TensorBoard(run_dir, purge_step=6)
    for step in range(6, 11):
        tb.scalars(step, {"Loss/D": resumed_value(step), "Loss/G": -resumed_value(step), "Other/x": 2.0})
        tb.histograms(step, {"Critic/scores": torch.randn(64)})
    tb.image("Samples", 8, torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8))
    tb.scalars(8, {"Metrics/w1": float("inf")})
    tb.scalars(10, {"Loss/D": -1.0})  # the same step again: this later value wins
    tb.close()


def test_read_scalars_purges_what_a_resumed_run_logged_again_and_keeps_the_last_value_of_a_step(tmp_path):
    write_resumed_run(tmp_path)
    assert len(event_files(tmp_path)) == 2
    got = read_scalars(tmp_path, ["Loss/*", "Metrics/*"])
    assert list(got) == ["Loss/D", "Loss/G", "Metrics/w1"]  # Other/x matches no pattern
    loss_D = got["Loss/D"]
    assert loss_D.steps.dtype == np.int64 and loss_D.values.dtype == np.float64
    assert loss_D.steps.tolist() == list(range(1, 11))
    expected = [first_value(s) for s in range(1, 6)] + [resumed_value(s) for s in range(6, 10)] + [-1.0]
    assert loss_D.values.tolist() == expected
    assert got["Loss/G"].values.tolist() == [-v for v in expected[:-1]] + [-resumed_value(10)]
    w1 = got["Metrics/w1"]
    assert w1.steps.tolist() == [4, 8]
    assert math.isnan(w1.values[0]) and w1.values[1] == math.inf  # non-finite values kept; step 8 from the resumed run


def test_read_scalars_reads_what_tensorboards_event_accumulator_reads(tmp_path):
    write_resumed_run(tmp_path)
    accumulator = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={k: 0 for k in event_accumulator.DEFAULT_SIZE_GUIDANCE}).Reload()
    got = read_scalars(tmp_path, ["*"])
    assert sorted(got) == sorted(accumulator.Tags()["scalars"])
    for tag in ("Loss/G", "Other/x", "Metrics/w1"):  # no step twice: the same points (TensorBoard keeps both of a repeated step)
        theirs = accumulator.Scalars(tag)
        assert got[tag].steps.tolist() == [e.step for e in theirs]
        np.testing.assert_array_equal(got[tag].values, np.array([e.value for e in theirs]))


def test_read_scalars_reads_new_style_scalars_and_stops_at_a_record_cut_short(tmp_path):
    tb = TensorBoard(tmp_path)
    tb.writer.add_scalar("Metrics/new", 1.5, 3, new_style=True)
    tb.writer.add_scalar("Metrics/new", 2.5, 4, new_style=True)
    tb.close()
    (path,) = event_files(tmp_path)
    whole = path.read_bytes()
    assert read_scalars(tmp_path, ["Metrics/*"])["Metrics/new"].values.tolist() == [1.5, 2.5]
    path.write_bytes(whole[:-3])  # the last record cut short, as when a run is killed mid-write
    assert read_scalars(tmp_path, ["Metrics/*"])["Metrics/new"].steps.tolist() == [3]


def test_read_scalars_stops_a_file_at_a_damaged_record_it_uses(tmp_path):
    tb = TensorBoard(tmp_path)
    for step in (1, 2, 3):
        tb.scalars(step, {"Loss/D": 1000.0 + step})
    tb.close()
    (path,) = event_files(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.rfind(np.float32(1002.0).tobytes())  # step 2's value, inside its record
    data[at] ^= 0x01  # one bit flipped: the record still parses, its CRC fails
    path.write_bytes(bytes(data))
    assert read_scalars(tmp_path, ["Loss/D"])["Loss/D"].steps.tolist() == [1]  # as TensorBoard: the file ends there


def test_read_scalars_applies_tensorboards_older_purge_rule_to_files_without_a_file_version(tmp_path):
    """Files of old writers have no file_version: a step below the largest seen drops its own tags' later points."""
    logged = [(1, "a", 1.0), (1, "b", 1.0), (2, "a", 2.0), (2, "b", 2.0), (3, "a", 3.0), (3, "b", 3.0), (2, "a", 20.0), (4, "b", 4.0)]
    with open(tmp_path / "events.out.tfevents.1000000000.host", "wb") as f:
        writer = RecordWriter(f)
        for step, tag, value in logged:
            writer.write(event_pb2.Event(step=step, summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)])).SerializeToString())
    got = read_scalars(tmp_path, ["*"])
    assert (got["a"].steps.tolist(), got["a"].values.tolist()) == ([1, 2], [1.0, 20.0])
    assert (got["b"].steps.tolist(), got["b"].values.tolist()) == ([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0])
    accumulator = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={event_accumulator.SCALARS: 0}).Reload()
    assert [(e.step, e.value) for e in accumulator.Scalars("a")] == [(1, 1.0), (2, 20.0)]


def test_read_scalars_without_event_files_and_without_a_directory(tmp_path):
    assert read_scalars(tmp_path, ["*"]) == {}
    with pytest.raises(FileNotFoundError):
        read_scalars(tmp_path / "missing", ["*"])


def test_bench_compare_reads_the_same_points_as_tensorboard(capsys):
    """scripts/bench_compare.py on a few small runs: one line, both readers agree (no time asserted)."""
    spec = importlib.util.spec_from_file_location("bench_compare", Path(__file__).resolve().parent.parent / "scripts" / "bench_compare.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--runs", "3", "--steps", "1000", "--rounds", "1"]) == 0
    line, comparison = capsys.readouterr().out.strip().splitlines()
    fields = dict(field.split("=", 1) for field in line.split() if "=" in field and not field.startswith("tags="))
    assert "groups=3 figures=8" in comparison  # 3 runs: 3 objectives of one seed; figures: 3 scalars and 5 metrics
    # per run: Loss/D, Loss/G, Wasserstein/estimate every 10 steps, 5 Metrics/* every 500
    assert fields["ganlab_points"] == fields["tensorboard_points"] == str(3 * (3 * 100 + 5 * 2))
    assert fields["same_points"] == "True"


# -------------------------------------------------------------------------------------- seed_band


def series(steps, values) -> Series:
    return Series(np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64))


def test_seed_band_is_the_mean_and_the_t_interval_over_seeds_at_the_common_steps():
    runs = [
        series([0, 10, 20], [1.0, 2.0, 3.0]),
        series([0, 10, 20, 30], [2.0, 4.0, 5.0, 9.0]),  # step 30: logged by this run only, left out
        series([0, 10, 20], [3.0, 9.0, float("nan")]),
    ]
    band = seed_band(runs, confidence=0.9)
    assert band.steps.tolist() == [0, 10, 20]
    assert band.n.tolist() == [3, 3, 2] and band.runs == 3 and band.confidence == 0.9
    assert band.mean.tolist() == pytest.approx([2.0, 5.0, 4.0], rel=1e-15)
    # by hand: mean +- t_{0.95, n-1} s / sqrt(n)
    half = [stats.t.ppf(0.95, 2) * 1.0 / math.sqrt(3), stats.t.ppf(0.95, 2) * math.sqrt(13.0) / math.sqrt(3), stats.t.ppf(0.95, 1) * math.sqrt(2.0) / math.sqrt(2)]
    assert band.lower.tolist() == pytest.approx([m - h for m, h in zip([2.0, 5.0, 4.0], half)], rel=1e-12)
    assert band.upper.tolist() == pytest.approx([m + h for m, h in zip([2.0, 5.0, 4.0], half)], rel=1e-12)


def test_seed_band_of_one_finite_value_is_the_value_and_of_none_is_nan():
    band = seed_band([series([1, 2], [0.5, float("inf")]), series([1, 2], [float("nan"), float("-inf")])])
    assert band.n.tolist() == [1, 0]
    assert band.mean[0] == band.lower[0] == band.upper[0] == 0.5
    assert all(math.isnan(x[1]) for x in (band.mean, band.lower, band.upper))
    one = seed_band([series([1, 2], [3.0, 4.0])])
    assert one.lower.tolist() == one.upper.tolist() == one.mean.tolist() == [3.0, 4.0] and one.runs == 1


def test_seed_band_refuses_no_series_and_a_confidence_outside_0_1():
    with pytest.raises(ValueError, match="at least one"):
        seed_band([])
    with pytest.raises(ValueError, match="between 0 and 1"):
        seed_band([series([1], [1.0])], confidence=95)


# ------------------------------------------------------------------------------------ the figures


def two_groups() -> dict[str, dict[str, Band]]:
    js = [series([0, 10, 20], [3.0 + s, 2.0 + s, 1.0 + s]) for s in (0.0, 0.5, 1.0)]
    gp = [series([0, 10, 20], [2.0 + s, 1.0 + s, 0.5 + s]) for s in (0.0, 0.2)]
    return {
        "objective=js": {"Loss/D": seed_band(js), "Metrics/w1": seed_band([series([20], [0.3]), series([20], [0.4]), series([20], [0.2])])},
        "objective=wgan_gp,lr=1e-4": {"Loss/D": seed_band(gp)},
    }


def test_curve_figure_draws_one_line_and_one_band_per_group_with_a_legend():
    bands = two_groups()
    fig = curve_figure("Loss/D", bands)
    (ax,) = fig.axes
    assert len(ax.lines) == 2 and len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), bands["objective=wgan_gp,lr=1e-4"]["Loss/D"].mean)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["objective=js (3 seeds)", "objective=wgan_gp,lr=1e-4 (2 seeds)"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "Loss/D") and ax.get_title() == "Loss/D: mean over seeds, 95% t-interval"
    assert len(curve_figure("Metrics/w1", bands).axes[0].lines) == 1  # a group without the tag is left out


def test_plot_curves_writes_one_png_per_tag(tmp_path):
    paths = plot_curves(two_groups(), tmp_path / "curves")
    assert [p.name for p in paths] == ["Loss_D.png", "Metrics_w1.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in paths)


# --------------------------------------------------------------------- TensorBoard runs and server


def test_write_tensorboard_replaces_its_own_folder_and_keeps_a_foreign_one(tmp_path):
    bands = two_groups()
    root = write_tensorboard(bands, tmp_path)
    write_tensorboard(bands, tmp_path)  # again: replaced, not one more event file per run
    assert sorted(p.name for p in root.iterdir()) == sorted(run_folder(g) for g in bands)
    assert all(len(list((root / run_folder(g)).iterdir())) == 1 for g in bands)
    (root / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="did not write"):
        write_tensorboard(bands, tmp_path)
    assert (root / "notes.txt").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(base: str, path: str, **query):
    url = f"{base}{path}" + ("?" + urllib.parse.urlencode(query) if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def tensorboard_server(tmp_path):
    """Start a real TensorBoard over ``tmp_path`` on 127.0.0.1; yield its base URL; always stop it."""
    port = free_port()
    args = [sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path), "--host", "127.0.0.1", "--port", str(port),
            "--load_fast=false", "--reload_interval", "1"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_for(server, fetch, ready, seconds=60.0):
    """``fetch()`` once ``ready`` holds for its answer (the server loads the runs in the background)."""
    deadline = time.monotonic() + seconds
    while True:
        assert server.poll() is None, server.stderr.read().decode()[-2000:]
        try:
            answer = fetch()
            if ready(answer):
                return answer
        except OSError:  # not listening yet
            pass
        assert time.monotonic() < deadline, f"TensorBoard did not serve the data within {seconds:.0f} s"
        time.sleep(0.3)


def test_a_real_tensorboard_server_serves_the_group_runs_and_the_custom_scalars_layout(tmp_path, tensorboard_server):
    bands = two_groups()
    write_tensorboard(bands, tmp_path)
    base, server = tensorboard_server
    runs = {f"tensorboard/{run_folder(g)}": g for g in bands}
    assert "tensorboard/objective=js" in runs  # the run name is the group name, readable
    wait_for(server, lambda: get_json(base, "/data/runs"), lambda answer: set(answer) == set(runs))
    for run, group in runs.items():
        band = bands[group]["Loss/D"]
        for suffix, values in (("mean", band.mean), ("lower", band.lower), ("upper", band.upper)):
            fetch = lambda: get_json(base, "/data/plugin/scalars/scalars", run=run, tag=f"Loss/D/{suffix}")  # [[wall_time, step, value], ...]
            points = wait_for(server, fetch, lambda answer: len(answer) == len(band.steps))
            assert [p[1] for p in points] == band.steps.tolist()
            assert [p[2] for p in points] == pytest.approx(values.astype(np.float32).tolist())
    layout = wait_for(server, lambda: get_json(base, "/data/plugin/custom_scalars/layout"), bool)
    categories = {c["title"]: c["chart"] for c in layout["category"]}
    assert sorted(categories) == ["Loss", "Metrics"]
    (chart,) = categories["Loss"]
    assert chart["title"] == "Loss/D"
    assert chart["margin"]["series"] == [{"value": "Loss/D/mean", "lower": "Loss/D/lower", "upper": "Loss/D/upper"}]
    assert [c["title"] for c in categories["Metrics"]] == ["Metrics/w1"]
