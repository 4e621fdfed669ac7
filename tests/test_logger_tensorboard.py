"""ganlab.logger.tensorboard: the event files of a run resumed in the same process read in the order
they were written (TensorBoard reads them in name order)."""

from __future__ import annotations

import time

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.summary.writer import event_file_writer

from ganlab.compare.scalars import read_scalars
from ganlab.logger import tensorboard as tensorboard_logger
from ganlab.logger.tensorboard import TensorBoard


def test_a_resume_in_the_same_process_and_second_reads_after_what_it_follows(tmp_path, monkeypatch):
    """The counter in the file names crosses from 9 to 10 between the two writers: as text ".10" sorts
    before ".9", so without waiting for the next second the resumed file would be read first."""
    monkeypatch.setattr(event_file_writer._global_uid, "_value", 9)
    first = TensorBoard(tmp_path)
    first.scalars(1, {"Loss/D": 1.0})
    first.scalars(2, {"Loss/D": 2.0})
    first.close()
    resumed = TensorBoard(tmp_path, purge_step=2)  # a rollback to step 2 logs it again
    resumed.scalars(2, {"Loss/D": 20.0})
    resumed.scalars(3, {"Loss/D": 30.0})
    resumed.close()

    names = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    assert [n.rsplit(".", 1)[1] for n in names] == ["9", "10"]  # name order is the order written
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("Loss/D")] == [(1, 1.0), (2, 20.0), (3, 30.0)]
    series = read_scalars(tmp_path, ["Loss/D"])["Loss/D"]
    assert list(series.steps) == [1, 2, 3] and list(series.values) == [1.0, 20.0, 30.0]


def test_an_event_file_from_the_future_is_not_waited_for(tmp_path, monkeypatch):
    """A run copied from a machine whose clock is an hour ahead: waiting an hour would gain nothing."""
    slept = []
    monkeypatch.setattr(tensorboard_logger.time, "sleep", slept.append)
    (tmp_path / f"events.out.tfevents.{int(time.time()) + 3600}.host.1.0").write_bytes(b"")
    TensorBoard(tmp_path).close()
    assert slept == []
    now = tmp_path / "now"
    now.mkdir()
    (now / f"events.out.tfevents.{int(time.time())}.host.1.1").write_bytes(b"")  # this second: wait for the next
    TensorBoard(now).close()
    assert len(slept) == 1 and 0 < slept[0] <= 1
