"""Every scalar point of a run's TensorBoard event files, as TensorBoard itself would show it.

``read_scalars(run_dir, ["Metrics/*", "Loss/D"])`` returns ``{tag: Series}``: all the points of
the matching tags (no reservoir sampling), after TensorBoard's purge of the points that a resumed
run logged again, one value per step.

What is read, in which order, and what is dropped follows TensorBoard's own reader
(``tensorboard/backend/event_processing``):

- files: the event files directly in ``run_dir`` (``io_wrapper.IsSummaryEventsFile``), in sorted
  path order, which is the order of ``directory_watcher.DirectoryWatcher`` (file names start with
  ``events.out.tfevents.<seconds since 1970>``, so it is the order they were written in);
- records: TFRecord framing (a little-endian uint64 length, its masked CRC-32C, the data, the
  data's masked CRC-32C), each record one ``Event`` proto (``event_pb2``). A record cut short
  (a run still writing, or killed mid-write), one that does not parse, and a used one that fails
  its checksums end that file, as ``event_file_loader.RawEventFileLoader`` does;
- points: ``simple_value`` summaries (``SummaryWriter.add_scalar``) and the scalars plugin's
  one-element tensors (``add_scalar(..., new_style=True)``), kept as they are, NaN and inf included;
- purge (``event_accumulator.EventAccumulator._MaybePurgeOrphanedData``): a ``SessionLog.START``
  event at step ``s`` (written by ``SummaryWriter(purge_step=s)`` when ganlab resumes a run or
  rolls it back) drops every point read so far at a step >= ``s``; files without
  ``file_version`` >= 2 use TensorBoard's older rule instead: an event with a summary whose
  step is below the largest step seen drops the points of its own tags at steps >= its step;
- a step logged twice (after the purge) keeps the value read last. TensorBoard keeps both points
  and draws a step back in the line; a curve needs one value per step.

Why not ``EventAccumulator`` itself: without TensorFlow installed, TensorBoard's record reader is
its pure-Python fallback (``compat/tensorflow_stub/pywrap_tensorflow.PyRecordReader_New``), which
computes the CRC-32C of every record byte by byte in Python, about 0.25 us a byte, pictures and
histograms included. On 100 runs of 5000 steps as ganlab logs them (197 MB of event files: 18
scalars every 10 steps, histograms, five 384 px pictures), ``EventAccumulator`` took 43 s and this
reader 3.5 s for the same 155,000 points of the default tags (``scripts/bench_compare.py``, a
2-core VM). Here the framing is read with ``struct`` from the file's bytes, each record is parsed
with TensorBoard's own ``event_pb2``, and both checksums are checked (with TensorBoard's own
``masked_crc32c``) on the records whose content is used (a matching scalar, a session log, the
file version), not on the pictures, histograms and other tags that are skipped: every value
returned is verified. The one difference from TensorBoard: a damaged record of a skipped kind
that still parses is passed over, where TensorBoard would stop reading that file there.
"""

from __future__ import annotations

import fnmatch
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing import event_util, io_wrapper
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.util import tensor_util

DEFAULT_TAGS = ("Metrics/*", "Wasserstein/estimate", "Loss/D", "Loss/G")  # the curves `ganlab compare` draws by default (issue 13)

_HEADER = struct.Struct("<QI")  # record length, masked CRC-32C of the length's 8 bytes
_CRC = struct.Struct("<I")
_START = event_pb2.SessionLog.START
_SCALARS_PLUGIN = "scalars"


@dataclass(frozen=True)
class Series:
    """One tag's points: ``steps`` int64 (n,), strictly increasing; ``values`` float64 (n,), NaN/inf as logged."""

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


def event_files(run_dir: str | Path) -> list[Path]:
    """The event files directly in ``run_dir``, in the order TensorBoard reads them (sorted paths)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory {run_dir}")
    return sorted((p for p in run_dir.iterdir() if io_wrapper.IsSummaryEventsFile(str(p)) and p.is_file()), key=str)


class Record:
    """One TFRecord of an event file: the data (one serialized ``Event``) and its two stored masked CRC-32Cs."""

    __slots__ = ("length", "length_crc", "data", "data_crc")

    def __init__(self, length: bytes, length_crc: int, data: bytes, data_crc: int):
        self.length, self.length_crc, self.data, self.data_crc = length, length_crc, data, data_crc

    def intact(self) -> bool:
        """Whether both checksums hold (TensorBoard's masked CRC-32C, pure Python: ~0.25 us a byte)."""
        return masked_crc32c(self.length) == self.length_crc and masked_crc32c(self.data) == self.data_crc


def records(path: str | Path) -> Iterator[Record]:
    """The records of one event file, in order, until its end or a record cut short.

    The checksums are not checked here (:meth:`Record.intact`): they are only worth their cost on
    the records that are used (module docstring).
    """
    data = memoryview(Path(path).read_bytes())
    end, at = len(data), 0
    while at + _HEADER.size <= end:
        length, length_crc = _HEADER.unpack_from(data, at)
        start = at + _HEADER.size
        at = start + length + _CRC.size
        if at > end:
            return  # cut short: the rest is being written, or was never
        yield Record(bytes(data[start - _HEADER.size:start - _CRC.size]), length_crc, bytes(data[start:start + length]), _CRC.unpack_from(data, start + length)[0])


class _Points:
    """The points of one tag as read so far, in read order."""

    __slots__ = ("steps", "values")

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: list[float] = []

    def keep_before(self, step: int) -> None:
        kept = [(s, v) for s, v in zip(self.steps, self.values) if s < step]
        self.steps = [s for s, _ in kept]
        self.values = [v for _, v in kept]

    def series(self) -> Series:
        steps = np.asarray(self.steps, dtype=np.int64)
        values = np.asarray(self.values, dtype=np.float64)
        order = np.argsort(steps, kind="stable")  # equal steps stay in read order
        steps, values = steps[order], values[order]
        last = np.append(steps[1:] != steps[:-1], True)  # the last point read at each step
        return Series(steps[last], values[last])


def read_scalars(run_dir: str | Path, patterns: Iterable[str] = DEFAULT_TAGS) -> dict[str, Series]:
    """Every scalar point of the tags of ``run_dir`` that match one of ``patterns``, by tag (sorted).

    ``patterns``: shell-style, case-sensitive (``fnmatch.fnmatchcase``): ``"Metrics/*"``,
    ``"Loss/D"``. Files, purge rule and duplicate steps: module docstring. A tag whose points were
    all purged, and a run without event files, give no entry. Raises FileNotFoundError when
    ``run_dir`` is not a directory, and OSError when a file cannot be read.
    """
    patterns = tuple(patterns)
    wanted: dict[str, bool] = {}  # tag -> matches a pattern (fnmatch once per tag, not per point)
    scalar_plugin_tags: set[str] = set()  # tags whose tensors are scalars (metadata on the first value only)
    points: dict[str, _Points] = {}
    file_version: float | None = None
    most_recent_step = -1  # for the rule of files without a file version

    for path in event_files(run_dir):
        for record in records(path):
            try:
                event = event_pb2.Event.FromString(record.data)
            except Exception:  # protobuf's DecodeError: a damaged record, which ends the file as in TensorBoard
                break
            used: list[tuple[str, float]] = []
            kind = event.WhichOneof("what")
            if kind == "summary":
                for value in event.summary.value:
                    tag = value.tag
                    field = value.WhichOneof("value")
                    if field == "tensor" and value.metadata.plugin_data.plugin_name == _SCALARS_PLUGIN:
                        scalar_plugin_tags.add(tag)
                    if field not in ("simple_value", "tensor"):
                        continue
                    if field == "tensor" and tag not in scalar_plugin_tags:
                        continue
                    match = wanted.get(tag)
                    if match is None:
                        match = wanted[tag] = any(fnmatch.fnmatchcase(tag, p) for p in patterns)
                    if match:
                        x = value.simple_value if field == "simple_value" else float(tensor_util.make_ndarray(value.tensor).reshape(()))
                        used.append((tag, x))
            if (used or kind in ("file_version", "session_log")) and not record.intact():
                break  # a damaged record ends the file, as in TensorBoard

            # TensorBoard's purge (event_accumulator.py, _MaybePurgeOrphanedData), before the event's own points.
            if kind == "file_version":
                file_version = event_util.ParseFileVersion(event.file_version)
            if file_version is not None and file_version >= 2:
                if kind == "session_log" and event.session_log.status == _START:
                    for p in points.values():
                        p.keep_before(event.step)
            elif event.step < most_recent_step and kind == "summary":
                for tag in {v.tag for v in event.summary.value} & points.keys():
                    points[tag].keep_before(event.step)
            else:
                most_recent_step = event.step

            for tag, x in used:
                p = points.get(tag)
                if p is None:
                    p = points[tag] = _Points()
                p.steps.append(event.step)
                p.values.append(x)

    series = {tag: p.series() for tag, p in sorted(points.items()) if p.steps}
    return series
