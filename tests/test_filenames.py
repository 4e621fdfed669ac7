"""ganlab.filenames: numbered names ordered by their number, and sweep job folder names that
Linux, macOS and Windows accept for any value a user can type (checked against each file
system's rules, written out here independently of the code under test)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sys
import unicodedata
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from ganlab.apps.output_dir import check_not_an_earlier_sweep
from ganlab.apps.sweep_report import SweepReport
from ganlab.config import MAX_DIRNAME, swept_overrides
from ganlab.filenames import HASH_CHARS, number_order, numbered, portable_name, sorted_by_number

from conftest import TINY

# ------------------------------------------------------------------------ numbered names


def test_numbered_orders_by_the_number_and_skips_other_names(tmp_path):
    for name in ["step_9999990.pt", "step_10000000.pt", "step_0000004.pt", "step_123456789.pt",
                 ".step_10000001.pt.x1y2.tmp", "step_final.pt", "step_5.pt.bak", "notes.txt"]:
        (tmp_path / name).touch()
    assert [(n, p.name) for n, p in numbered(tmp_path, "step_", ".pt")] == [
        (4, "step_0000004.pt"), (9999990, "step_9999990.pt"), (10000000, "step_10000000.pt"), (123456789, "step_123456789.pt"),
    ]
    assert numbered(tmp_path / "missing", "step_", ".pt") == []


def test_number_order_compares_digit_runs_as_numbers():
    names = ["step_1", "seed=10", "step_01", "seed=2", "seed=1,x=b", "a", "seed=1,x=a", "samples_10000000.png", "samples_9999990.png"]
    assert sorted(names, key=number_order) == [
        "a", "samples_9999990.png", "samples_10000000.png", "seed=1,x=a", "seed=1,x=b", "seed=2", "seed=10", "step_01", "step_1",
    ]
    assert sorted_by_number([Path("s/seed=10"), Path("s/seed=9")]) == [Path("s/seed=9"), Path("s/seed=10")]


def test_an_earlier_sweep_is_named_by_its_first_job_in_number_order(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    for job in ("seed=10", "seed=2"):
        (tmp_path / job).mkdir()
        (tmp_path / job / "metrics.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        check_not_an_earlier_sweep(OmegaConf.create({"resume": None, "hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert exit_info.value.code == 2
    assert "already holds 2 training run(s) of an earlier sweep (e.g. seed=2)" in capsys.readouterr().err


def test_the_sweep_report_lists_jobs_in_number_order(tmp_path, capsys):
    for job in ("seed=10", "seed=2", "seed=1"):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "config.yaml").write_text("{}")
        (tmp_path / job / "failed.json").write_text(json.dumps({"error": "ConfigError", "message": f"bad {job}"}))
    with pytest.raises(SystemExit) as exit_info:  # no on_job_end here: the report finds the jobs on disk
        SweepReport().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert [out.index(f"bad {job}") for job in ("seed=1", "seed=2", "seed=10")] == sorted(out.index(f"bad {job}") for job in ("seed=1", "seed=2", "seed=10"))


# ------------------------------------------------------------------------ each file system's rules

WINDOWS_FORBIDDEN = set('<>:"/\\|?*') | {chr(i) for i in range(32)}
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789¹²³"}


def problems(name: str, limit: int = 255) -> list[str]:
    """Why ``name`` is not one folder name on Linux (ext4), macOS (APFS, HFS+) and Windows (NTFS); [] when it is."""
    found = []
    if name in ("", ".", ".."):
        found.append("empty, . or ..")
    try:
        utf8 = name.encode("utf-8")  # strict: APFS stores UTF-8 only, NTFS UTF-16: a lone surrogate fits neither
    except UnicodeEncodeError:
        return found + ["a lone surrogate"]
    nfd = unicodedata.normalize("NFD", name)
    sizes = {
        "Linux/APFS UTF-8 bytes": len(utf8),
        "APFS UTF-8 bytes of a decomposed copy": len(nfd.encode("utf-8")),
        "HFS+ UTF-16 units (NFD)": len(nfd.encode("utf-16-le")) // 2,
        "NTFS UTF-16 units": len(name.encode("utf-16-le")) // 2,
    }
    found += [f"{what} {size} > {limit}" for what, size in sizes.items() if size > limit]
    found += [f"character {c!r} (Windows; / and NUL everywhere)" for c in sorted(set(name) & WINDOWS_FORBIDDEN)]
    if name[-1:] in (".", " "):
        found.append("ends in a dot or a space (Windows drops it)")
    if name.split(".")[0].rstrip(" ").upper() in WINDOWS_DEVICES:
        found.append("a Windows device name")
    return found


def same_folder(name: str) -> str:
    """What the file systems that ignore case and Unicode normalisation (APFS, HFS+, NTFS) compare."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


NASTY = [
    "a/b", "a_b", "a\\b", "C:\\data\\x", "a<b>c", 'say "hi"', "a|b", "what?", "*", "cuda:0",
    "tab\there", "new\nline", "\x1b[31mred", "del\x7f", "\x85next line (C1)",
    "CON", "con.txt", "NUL", "COM1", "lpt9.log", "AUX .x", "COM¹", "conin$",
    ".", "..", "...", ".hidden", "trailing.", "trailing ", " ", "",
    "é" * 200, "e\u0301" * 200, "é", "e\u0301", "Foo", "foo", "FOO",
    "日本語" * 100, "한국어" * 60, "🎉" * 100, "👨\u200d👩\u200d👧" * 30, "ﷺ" * 90, "ß" * 130, "İ",
    "a\udcffb", "a\udcfeb", "\ud800", "\udfff" * 300,
    "\u202eevil.exe", "zero\u200bwidth", "\ufeffbom", "line\u2028sep", "\xa0nbsp", "\ue000private", "\uffff", "\U000e0041tag",
    "x" * 1000, "x" * 1001, "[0.5,0.9]", "${oc.env:HOME}", "a=b,c=d", "~",
]


@pytest.mark.parametrize("value", NASTY, ids=lambda v: ascii(v)[:40])
def test_a_job_name_is_a_valid_folder_everywhere_and_can_be_created(value, tmp_path):
    for name in (portable_name(value), swept_overrides([f"objective.name={value}"], ["-m"])):
        assert problems(name) == []
        assert all(unicodedata.category(c)[0] != "C" for c in name)  # readable: nothing invisible or unprintable
        (tmp_path / name).mkdir()
        assert name in os.listdir(tmp_path)
    assert problems(swept_overrides([f"objective.name={value}"], ["-m"]), limit=MAX_DIRNAME) == []


def test_job_names_stay_unique_on_every_file_system():
    names = [swept_overrides([f"objective.name={value}"], ["-m"]) for value in NASTY]
    assert len({same_folder(name) for name in names}) == len(NASTY)
    raw = [portable_name(value, distinct_by_case=True) for value in NASTY]
    assert len({same_folder(name) for name in raw}) == len(NASTY)


@pytest.mark.parametrize(
    "task",
    [
        ["objective=wgan_gp", "seed=1"], ["objective=js"], ["seed=2"], ["steps=5"], ["objective.optimizer.lr_D=0.0001"],
        ["objective.optimizer.lr_G=1E-4"], ["objective.optimizer.betas=[0.5,0.9]"], ["compile=True"], ["device=cpu", "precision=bf16"],
        ["model.width=64", "objective.constraints.gp.weight=10.0"], ["dataset=imagefolder", "dataset.root=data"],
    ],
)
def test_plain_names_are_unchanged(task):
    assert swept_overrides(task, ["-m", *task]) == ",".join(sorted(task))


@pytest.mark.parametrize("values", [("js", "hinge"), ("[gp]", "[gp,sn]", "[]")])
def test_a_swept_group_of_a_group_names_one_folder_per_job(values):
    """``-m objective/loss=js,hinge``: the "/" of the group's path must not nest folders."""
    group = "objective/loss" if values[0] == "js" else "objective/constraints"
    argv = ["-m", f"{group}={','.join(values)}"]
    names = [swept_overrides([f"{group}={value}"], argv) for value in values]
    for value, name in zip(values, names):
        assert name[:-HASH_CHARS] == f"{group.replace('/', '_')}={value}~"
    assert len(set(names)) == len(values)


def test_long_plain_names_keep_their_earlier_cut_and_hash():
    overrides = [f"key{i}=" + "v" * 30 for i in range(20)]
    name = ",".join(sorted(overrides))
    earlier = f"{name[:MAX_DIRNAME - 11]}~{hashlib.sha1(name.encode()).hexdigest()[:10]}"  # the naming before the portable names
    assert swept_overrides(overrides, ["-m", *overrides]) == earlier


@pytest.mark.parametrize(
    "value,shown",
    [
        ("café", "objective.name=café~"), ("日本語", "objective.name=日本語~"), ("/data/faces", "objective.name=_data_faces~"),
        ("cuda:1", "objective.name=cuda_1~"), ("Foo", "objective.name=Foo~"), ("a\udcffb", "objective.name=a_b~"),
        ("x" * 300, "objective.name=" + "x" * (MAX_DIRNAME - len("objective.name=") - 1 - HASH_CHARS) + "~"),
    ],
)
def test_changed_names_stay_readable(value, shown):
    name = swept_overrides([f"objective.name={value}"], ["-m"])
    assert name[:-HASH_CHARS] == shown
    assert name[-HASH_CHARS:] == hashlib.sha1(f"objective.name={value}".encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]


# Code point ranges of every kind a command line can carry (Unicode categories and encodings).
POOLS = [
    (0x20, 0x7E),  # printable ASCII, the Windows-forbidden characters among them
    (0x00, 0x1F), (0x7F, 0x9F),  # C0 and C1 controls
    (0xA0, 0x2FF),  # Latin-1 and extended Latin: case pairs, NBSP
    (0x300, 0x36F),  # combining marks: NFC and NFD differ
    (0x590, 0x6FF),  # Hebrew, Arabic: right to left
    (0xAC00, 0xD7A3),  # Hangul syllables: three jamo each in NFD
    (0x2000, 0x206F),  # spaces, zero-width characters, bidi controls, line separators
    (0x4E00, 0x9FFF),  # CJK: 3 bytes of UTF-8 each
    (0xD800, 0xDFFF),  # lone surrogates (undecodable bytes of sys.argv)
    (0xE000, 0xF8FF), (0xFFF0, 0xFFFF),  # private use, specials and noncharacters
    (0x1F300, 0x1FAFF), (0xE0000, 0xE007F), (0x10FFF0, 0x10FFFF),  # emoji, tags, last plane: 4 bytes, 2 UTF-16 units
]
WORDS = ["CON", "nul", "COM9", "LPT¹", ".", "..", " ", "/", "\\", ":", "~", ",", "="]


def generated_values(seed: int, count: int) -> list[str]:
    """``count`` distinct values mixing the pools and WORDS, 0 to 400 code points long, from a seeded generator."""
    rng = random.Random(seed)
    values: set[str] = set()
    while len(values) < count:
        pools = rng.sample(POOLS, rng.randint(1, 3))
        parts = []
        for _ in range(rng.choice([0, 1, 2, 5, 20, 90, 400])):
            if rng.random() < 0.1:
                parts.append(rng.choice(WORDS))
            else:
                low, high = rng.choice(pools)
                parts.append(chr(rng.randint(low, high)))
        values.add("".join(parts))
    return sorted(values)


def test_generated_values_give_valid_unique_folders(tmp_path):
    values = generated_values(seed=10, count=400)
    for distinct_by_case in (False, True):
        names = [portable_name(value, distinct_by_case=distinct_by_case) for value in values]
        assert [(ascii(v), p) for v, name in zip(values, names) if (p := problems(name))] == []
        assert len(set(names)) == len(values)
    jobs = [swept_overrides([f"objective.name={value}"], ["-m"]) for value in values]
    assert [(ascii(v), p) for v, name in zip(values, jobs) if (p := problems(name, limit=MAX_DIRNAME))] == []
    assert len({same_folder(name) for name in jobs}) == len(values)
    for name in jobs:
        (tmp_path / name).mkdir()
    assert sorted(os.listdir(tmp_path)) == sorted(jobs)


# ------------------------------------------------------------------------ a real sweep


def test_a_sweep_with_unsafe_values_trains_each_job_in_its_own_folder(tmp_path, monkeypatch):
    """In process: ``ganlab train -m`` through Hydra's basic launcher, one job per value."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    from ganlab.cli import main

    values = ["'a/b:c*?|<>[1]'", "'" + "é" * 150 + "'", "Foo", "foo"]  # a path, Windows' characters, 300 bytes, case
    short = [a for a in TINY if not a.startswith(("steps=", "sample_every=", "eval_every="))]
    argv = ["-m", *short, "steps=4", "sample_every=4", "eval_every=4", f"objective.name={','.join(values)}", "hydra.sweep.dir=sweep"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ganlab"])  # main() sets it for Hydra; restored afterwards
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        assert main(["train", *argv]) == 0
    finally:
        GlobalHydra.instance().clear()
        for handler in logging.root.handlers[:]:  # Hydra's job logging (train.log in the last job)
            if handler not in handlers:
                logging.root.removeHandler(handler)
                handler.close()
        logging.root.setLevel(level)

    names = [swept_overrides([f"objective.name={value}"], argv) for value in values]
    assert len({same_folder(name) for name in names}) == len(values)
    sweep = tmp_path / "sweep"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == sorted(names)
    for name in names:
        assert problems(name, limit=MAX_DIRNAME) == []
        assert not (sweep / name / "failed.json").exists()
        assert json.loads((sweep / name / "metrics.json").read_text())["history"][-1]["step"] == 4
    tensorboard = EventMultiplexer()
    tensorboard.AddRunsFromDirectory(str(sweep))
    assert sorted(tensorboard.Runs()) == sorted(names)


def test_a_job_is_named_by_the_value_as_typed_not_as_hydra_escapes_it():
    """Hydra's sweeper hands each job ``dataset.root=/data/a\\ dir\\:x``; the folder shows ``a dir_x``."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    argv = ["-m", "dataset.root=/data/a dir:x,/data/b", "seed=1,2"]
    jobs = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(argv[1:]), None)[0]
    assert "dataset.root=/data/a\\ dir\\:x" in jobs[0]  # Hydra's escaping, which the name must not show
    names = [swept_overrides(task, argv) for task in jobs]
    assert names[0].startswith("dataset.root=_data_a dir_x,seed=1~")
    assert names[2].startswith("dataset.root=_data_b,seed=1~")
    assert len(set(names)) == len(jobs) == 4
