"""Models from the registry: aliases read from MLflow, a version's folder found (or
downloaded once into the home) from the source the registry recorded."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.registry.parts import RegistryParts


class RegistrySource:
    def __init__(self, parts: RegistryParts, downloads: Path) -> None:
        self.parts = parts
        self.downloads = downloads
        self._lock = threading.Lock()

    def aliases(self, name: str) -> dict[str, int]:
        return self.parts.store.aliases(name)

    def model_dir(self, name: str, version: int) -> Path:
        self.parts.get_version(name, version)  # VersionNotFound (404) when there is none
        store = self.parts.store
        source = store.version_source(name, version)
        local = store.local_dir(source) if source.startswith(("runs:/", "models:/m-")) else None
        if local is None and "://" not in source and Path(source).is_dir():
            local = Path(source)
        if local is None and source.startswith("file://"):
            local = Path(source.removeprefix("file://"))
        if local is not None and local.is_dir():
            return local
        target = self.downloads / name / str(version)
        with self._lock:
            if not target.is_dir():
                with store.model_files(source, None) as files:
                    partial = target.with_name(f"{version}.partial")
                    shutil.rmtree(partial, ignore_errors=True)
                    shutil.copytree(files, partial)
                    partial.rename(target)
        return target
