"""File and folder names that ganlab makes: ordering numbered names by their number, and turning
text a user typed into one folder name that every common file system accepts.

Numbered names. A run writes ``checkpoints/step_<step>.pt``, ``samples/<name>_<step>.png``,
``.hydra/resume_<n>/`` and ``run_info_resume_<step>.json``. The numbers are zero-padded to a fixed
width only for people reading a listing; a number outgrows any width (``step_10000000.pt`` has
one digit more than ``step_9999990.pt`` and sorts before it as text), so code that picks the
newest or oldest of them orders by the parsed number: :func:`numbered` for one family of names,
:func:`number_order` as a sort key for names that mix text and numbers (``seed=2`` before
``seed=10``).

Portable names. :func:`portable_name` makes a sweep job's folder name from its overrides. The name
must be valid on Linux, macOS and Windows, since a sweep directory is copied and synced between
them:

- length: at most 255 bytes of UTF-8 per name on Linux (ext4, btrfs, xfs) and, counted the
  strict way, on macOS (APFS); 255 UTF-16 code units on Windows (NTFS) and on macOS's HFS+, which
  stores names decomposed (NFD).
  A UTF-16 count never exceeds the UTF-8 byte count, so the UTF-8 length of the longer of the NFC
  and NFD forms bounds them all;
- characters: ``/`` and NUL everywhere; ``\\ < > : " | ? *`` and the control characters on
  Windows; lone surrogates: ``sys.argv`` holds one for each byte of a command line that is not
  UTF-8, which Linux stores as that byte but APFS (UTF-8 only) and NTFS (UTF-16) cannot;
- names: ``.`` and ``..``; on Windows ``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0``-``COM9``,
  ``LPT0``-``LPT9`` (also with superscript digits), ``CONIN$`` and ``CONOUT$``, in any case and
  with any extension (``nul.txt``), and a name that ends in a dot or a space (Windows drops them,
  so the folder would not be found again under its own name);
- uniqueness: APFS, HFS+ and NTFS (as formatted by default) compare names without regard to
  case, and APFS and HFS+ without regard to Unicode normalisation (``é`` typed as one or as two
  code points).

Sources: Microsoft, "Naming Files, Paths, and Namespaces" (Win32 file naming conventions); Apple,
"Apple File System Guide" (file name encoding and normalization) and Technical Q&A QA1173 (HFS+
names as UTF-16 in NFD); ``NAME_MAX`` = 255 bytes on Linux.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

# ------------------------------------------------------------------------ numbered names

_DIGITS = re.compile(r"([0-9]+)")


def number_order(name: str) -> tuple:
    """A sort key that compares the runs of digits in ``name`` as numbers and the rest as text.

    ``sorted(names, key=number_order)`` puts ``step_9999990.pt`` before ``step_10000000.pt`` and
    ``seed=2`` before ``seed=10``. Names whose numbers are equal but written differently
    (``step_01``, ``step_1``) fall back to plain text order, so the order is total.
    """
    parts = _DIGITS.split(name)  # text, digits, text, ...: the same kinds at the same positions
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts)), name


def sorted_by_number(paths: Iterable[Path]) -> list[Path]:
    """``paths`` ordered by :func:`number_order` (``sweep/seed=2`` before ``sweep/seed=10``)."""
    return sorted(paths, key=lambda path: number_order(str(path)))


def numbered(folder: str | Path, prefix: str, suffix: str = "") -> list[tuple[int, Path]]:
    """The entries of ``folder`` named ``<prefix><digits><suffix>``, as (number, path), smallest number first.

    Other names (a temporary file of an interrupted write, a file the user put there) are left out;
    a folder that does not exist has no entries.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(prefix) + "([0-9]+)" + re.escape(suffix))
    found = [(int(match[1]), path) for path in folder.iterdir() if (match := pattern.fullmatch(path.name))]
    return sorted(found, key=lambda item: (item[0], item[1].name))


# ------------------------------------------------------------------------ portable names

MAX_NAME_BYTES = 255  # the limit of every file system above (module docstring)
HASH_CHARS = 10  # hex digits of the SHA-1 suffix: 40 bits, no collision in any realistic sweep

_WINDOWS_FORBIDDEN = frozenset('<>:"/\\|?*')
# Control and format characters, lone surrogates, private use, unassigned code points and every
# separator except the plain space: invalid somewhere, invisible, or confusable with a space.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
_WINDOWS_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(COM|LPT)[0-9¹²³]) *(\.|$)", re.IGNORECASE)


def name_size(name: str) -> int:
    """The length of ``name`` as the strictest file system counts it: UTF-8 bytes of its NFC or NFD form, the larger.

    Raises UnicodeEncodeError for a name with a lone surrogate, which no file system here can store.
    """
    return max(len(unicodedata.normalize(form, name).encode("utf-8")) for form in ("NFC", "NFD"))


def _unsafe(c: str) -> bool:
    return c in _WINDOWS_FORBIDDEN or (c != " " and unicodedata.category(c) in _UNSAFE_CATEGORIES)


def is_portable(name: str, limit: int = MAX_NAME_BYTES) -> bool:
    """Whether ``name`` is one valid folder name on Linux, macOS and Windows (module docstring), at most ``limit`` bytes."""
    if name in ("", ".", "..") or name[-1] in ". " or _WINDOWS_RESERVED.match(name) or any(map(_unsafe, name)):
        return False
    return name_size(name) <= limit


def portable_name(text: str, limit: int = MAX_NAME_BYTES, distinct_by_case: bool = False) -> str:
    """``text`` as one folder name that Linux, macOS and Windows accept, readable and unique per ``text``.

    Plain text (printable ASCII without ``\\ / < > : " | ? *``, not starting with a dot, not a
    Windows device name, not ending in a dot or a space, at most ``limit`` bytes) is returned as
    it is. Anything else keeps its readable characters (accents, other scripts, emoji), has each
    unsafe one replaced by ``_``, is cut to fit ``limit`` bytes (:func:`name_size`) and gets
    ``~<first HASH_CHARS hex digits of the SHA-1 of text>``: replacing, cutting and the file
    systems that ignore case and Unicode normalisation could otherwise give two texts one folder.
    ``distinct_by_case=True`` says that upper and lower case letters in ``text`` distinguish it
    from other texts, so ASCII upper case gets the suffix too.
    """
    plain = text.isascii() and not text.startswith(".") and is_portable(text, limit)
    if plain and not (distinct_by_case and text != text.lower()):
        return text
    readable = "".join("_" if _unsafe(c) else c for c in unicodedata.normalize("NFC", text))
    if readable.startswith("."):  # ".", ".." and hidden folders, which listings and globs skip
        readable = "_" + readable[1:]
    if _WINDOWS_RESERVED.match(readable):
        readable = "_" + readable
    # surrogatepass: each lone surrogate is hashed as itself, so texts that differ only there differ.
    suffix = "~" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    # The suffix ends the name in a hex digit, so a cut never leaves a trailing dot or space.
    return _cut(readable, limit - len(suffix)) + suffix


def _cut(name: str, limit: int) -> str:
    """The longest prefix of ``name`` with :func:`name_size` at most ``limit``."""
    low, high = 0, min(len(name), limit)  # every character takes at least one byte
    while low < high:  # binary search: the size grows with the prefix
        mid = (low + high + 1) // 2
        low, high = (mid, high) if name_size(name[:mid]) <= limit else (low, mid - 1)
    while low and name_size(name[:low]) > limit:  # in case a normalisation made the size non-monotone
        low -= 1
    return name[:low]
