"""Dataset readers, one per layout. `READERS` is the order in which `open_dataset` tries their `matches`."""

from __future__ import annotations

from pathlib import Path

from stereo_studio.data.readers.common import FolderDataset
from stereo_studio.data.readers.kitti import Kitti2012, Kitti2015
from stereo_studio.data.readers.middlebury import ETH3D, Middlebury
from stereo_studio.data.readers.pairs import PairFolder
from stereo_studio.data.readers.sceneflow import SceneFlow

READERS: list[type[FolderDataset]] = [Kitti2015, Kitti2012, SceneFlow, ETH3D, Middlebury, PairFolder]


def find_reader(path: Path) -> type[FolderDataset] | None:
    """The first reader whose layout `path` has, or None."""
    for reader in READERS:
        if reader.matches(path):
            return reader
    return None


__all__ = ["ETH3D", "READERS", "FolderDataset", "Kitti2012", "Kitti2015", "Middlebury", "PairFolder",
           "SceneFlow", "find_reader"]
