"""Raw inputs given as one file or as a directory of partitions (one file per day, say).

A directory is read file by file in sorted order of the files' paths relative to it
(sub-directories included, so `2024/01/31.jsonl` comes before `2024/02/01.parquet`), and the
partitions are concatenated. Files of another format (README.md, .gitkeep, _SUCCESS) and hidden
files and directories (a name starting with '.') are not read; they are returned as `ignored`
so that the stage can list them in its report. A single file is read whatever its name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from instructgpt.config import InputError

TABLE_FORMATS = {".jsonl": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
"""Suffix -> format of the partitions of a prompt log or of demonstrations."""


@dataclass(frozen=True)
class Partition:
    """One file of a raw input and how to read it."""

    path: Path
    format: str
    """'jsonl', 'parquet' or 'json' (a Label Studio export)."""


def list_partitions(path: str | Path, formats: dict[str, str] = TABLE_FORMATS,
                    what: str = "input") -> tuple[list[Partition], list[str]]:
    """(partitions to read in order, ignored files and hidden directories) of ``path``.

    A file is one partition: the format of its suffix, JSONL for any suffix ``formats`` does not
    know (a log named `prompts.log` is read as JSONL, as it always was). A directory gives its
    files with a suffix in ``formats``. ``what`` names the input in errors (e.g. 'inputs.prompts')."""
    path = Path(path)
    if path.is_file():
        return [Partition(path, formats.get(path.suffix.lower(), "jsonl"))], []
    if not path.is_dir():
        raise InputError(f"{what}: {path} does not exist (params.yaml names it; give a file or a directory)")
    partitions: list[Partition] = []
    ignored: list[str] = []
    for root, dirs, files in os.walk(path):
        hidden = sorted(d for d in dirs if d.startswith("."))
        ignored += [str(Path(root) / d) + "/" for d in hidden]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            file = Path(root) / name
            fmt = formats.get(file.suffix.lower())
            if fmt is None or name.startswith("."):
                ignored.append(str(file))
            else:
                partitions.append(Partition(file, fmt))
    partitions.sort(key=lambda p: p.path.relative_to(path).as_posix())
    ignored.sort()
    return partitions, ignored
