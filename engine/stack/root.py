"""The Asterisk 22 root: a Debian sid tree built with mmdebstrap, cached outside the repo by its inputs.

Nothing from sid is ever installed on the host. The root is built into a temporary directory and
renamed into place when complete, so a half-built root is never used. Nothing is ever deleted
while something is mounted below it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import structlog

from engine.errors import StackError
from engine.settings import Settings

log = structlog.get_logger(__name__)

SUITE = "sid"
COMPONENTS = ("main", "contrib", "non-free")  # non-free: libttspico-utils, the France-French prompt voice
PACKAGES = (
    "asterisk",
    "asterisk-modules",
    "asterisk-core-sounds-en-wav",
    "asterisk-core-sounds-fr-wav",
    "libttspico-utils",
)
ASTERISK_MAJOR = "22"
# Bump when the build steps below change, so every cache is rebuilt.
RECIPE_VERSION = "1"
EXCLUDED_PATHS = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*")
MANIFEST = ".vocalcast/manifest.txt"
BUILD_INFO = ".vocalcast/build.json"


@dataclass(frozen=True)
class RootInfo:
    path: Path
    key: str
    asterisk_version: str
    packages: int


def root_key(settings: Settings) -> str:
    """Hash of every input of the build: a different input means a different cached root."""
    inputs = {
        "suite": SUITE,
        "components": COMPONENTS,
        "packages": PACKAGES,
        "uid": settings.asterisk_uid,
        "recipe": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def root_path(settings: Settings) -> Path:
    return settings.cache_dir / f"asterisk-root-{root_key(settings)}"


def host_mirror(settings: Settings) -> str:
    """The Debian mirror of the host's apt sources, unless VOCALCAST_DEBIAN_MIRROR says otherwise."""
    if settings.debian_mirror:
        return settings.debian_mirror
    candidates: list[str] = []
    sources = Path("/etc/apt/sources.list.d")
    for file in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        text = file.read_text(errors="replace")
        if "debian-archive-keyring" in text or "debian" in file.name:
            candidates += re.findall(r"^URIs:\s*(\S+)", text, flags=re.MULTILINE)
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        candidates += re.findall(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", legacy.read_text(), flags=re.MULTILINE
        )
    for uri in candidates:
        if "security" not in uri and "/debian" in uri:
            return uri
    return "http://deb.debian.org/debian"


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path`` (from /proc/self/mountinfo)."""
    resolved = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == resolved or point.startswith(resolved + "/"):
            found.append(Path(point))
    return found


def safe_rmtree(path: Path) -> None:
    """Delete a tree, refusing while anything is mounted inside it (never delete through a mount)."""
    mounted = mounts_under(path)
    if mounted:
        raise StackError(f"refusing to delete {path}: still mounted: {', '.join(map(str, mounted))}")
    shutil.rmtree(path)


def read_info(path: Path) -> RootInfo | None:
    info_file = path / BUILD_INFO
    if not info_file.is_file():
        return None
    data = json.loads(info_file.read_text())
    return RootInfo(path, data["key"], data["asterisk_version"], data["packages"])


def ensure_root(settings: Settings, *, force: bool = False) -> RootInfo:
    """The cached root for these settings, built when missing (or when forced)."""
    path = root_path(settings)
    info = read_info(path)
    if info is not None and not force:
        return info
    check_host_ids(settings)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    if path.exists():
        safe_rmtree(path)
    tmp = settings.cache_dir / f".building-{root_key(settings)}-{os.getpid()}"
    if tmp.exists():
        safe_rmtree(tmp)
    log.info("asterisk_root.build", path=str(path), mirror=host_mirror(settings))
    try:
        _mmdebstrap(settings, tmp)
        version = _installed_version(tmp, "asterisk")
        if version is None:
            raise StackError("the Asterisk root was built but holds no asterisk package")
        major = version.split(":", 1)[-1].split(".", 1)[0]
        if major != ASTERISK_MAJOR:
            raise StackError(
                f"the Debian mirror now offers Asterisk {version} in {SUITE}, not Asterisk {ASTERISK_MAJOR}: "
                "vocalcast is built and tested for Asterisk 22; set VOCALCAST_DEBIAN_MIRROR to a snapshot "
                "that still has it (for example http://snapshot.debian.org/archive/debian/20261125T000000Z)"
            )
        _remap_asterisk_ids(tmp, settings.asterisk_uid)
        (tmp / "srv").mkdir(exist_ok=True)
        packages = _write_manifest(tmp)
        info = RootInfo(path, root_key(settings), version, packages)
        (tmp / BUILD_INFO).write_text(
            json.dumps(
                {
                    "key": info.key,
                    "asterisk_version": version,
                    "packages": packages,
                    "suite": SUITE,
                    "packages_requested": PACKAGES,
                },
                indent=2,
            )
        )
        tmp.rename(path)
    except BaseException:
        if tmp.exists() and not mounts_under(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale_roots(settings, keep=path)
    log.info("asterisk_root.ready", path=str(path), asterisk=version, packages=packages)
    return info


def check_host_ids(settings: Settings) -> None:
    """The root's asterisk uid/gid must not exist on the host (it could read host files otherwise)."""
    uid = settings.asterisk_uid
    for file, kind in ((Path("/etc/passwd"), "uid"), (Path("/etc/group"), "gid")):
        for line in file.read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2] == str(uid):
                raise StackError(
                    f"{kind} {uid} is used on the host by {fields[0]!r}: choose a free one with "
                    "VOCALCAST_ASTERISK_UID (the Asterisk root must not share ids with host users)"
                )


def _mmdebstrap(settings: Settings, target: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        raise StackError("mmdebstrap is not installed: run `make up` or scripts/bootstrap.sh first")
    cmd = [
        "mmdebstrap",
        "--mode=root",
        "--variant=essential",
        # The snapshot clock of sid's Release file can be behind ours.
        '--aptopt=Acquire::Check-Valid-Until "false"',
        f"--components={','.join(COMPONENTS)}",
        f"--include={','.join(PACKAGES)}",
        *[f"--dpkgopt=path-exclude={p}" for p in EXCLUDED_PATHS],
        SUITE,
        str(target),
        host_mirror(settings),
    ]
    log_file = settings.cache_dir / "asterisk-root-build.log"
    with log_file.open("wb") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=1800)
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace")[-2000:]
        if re.search(r"Unable to locate package asterisk|has no installation candidate", tail):
            raise StackError(
                f"the Debian mirror {host_mirror(settings)} no longer offers Asterisk in {SUITE}; set "
                "VOCALCAST_DEBIAN_MIRROR to a Debian snapshot that has Asterisk 22"
            )
        raise StackError(
            f"building the Asterisk root failed (mmdebstrap exit {proc.returncode}); see {log_file}:\n{tail}"
        )


def _installed_version(root: Path, package: str) -> str | None:
    status = (root / "var/lib/dpkg/status").read_text(errors="replace")
    for block in status.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", block, flags=re.MULTILINE):
            match = re.search(r"^Version: (\S+)$", block, flags=re.MULTILINE)
            return match.group(1) if match else None
    return None


def _remap_asterisk_ids(root: Path, new_id: int) -> None:
    """Give the root's asterisk user and group ``new_id`` and re-own their files."""
    old_uid = old_gid = None
    for name, index in (("passwd", 2), ("group", 2)):
        file = root / "etc" / name
        lines = file.read_text().splitlines()
        for i, line in enumerate(lines):
            fields = line.split(":")
            if fields[0] == "asterisk":
                if name == "passwd":
                    old_uid, old_gid = int(fields[2]), int(fields[3])
                    fields[3] = str(new_id)
                else:
                    old_gid = int(fields[2])
                fields[index] = str(new_id)
                lines[i] = ":".join(fields)
        file.write_text("\n".join(lines) + "\n")
    if old_uid is None or old_gid is None:
        raise StackError("the Asterisk root has no asterisk user")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            _reown(Path(dirpath) / name, old_uid, old_gid, new_id)
    _reown(root, old_uid, old_gid, new_id)


def _reown(path: Path, old_uid: int, old_gid: int, new_id: int) -> None:
    st = path.lstat()
    uid = new_id if st.st_uid == old_uid else -1
    gid = new_id if st.st_gid == old_gid else -1
    if uid != -1 or gid != -1:
        os.lchown(path, uid, gid)


def _write_manifest(root: Path) -> int:
    status = (root / "var/lib/dpkg/status").read_text(errors="replace")
    rows = []
    for block in status.split("\n\n"):
        pkg = re.search(r"^Package: (\S+)$", block, flags=re.MULTILINE)
        ver = re.search(r"^Version: (\S+)$", block, flags=re.MULTILINE)
        if pkg and ver and "install ok installed" in block:
            rows.append(f"{pkg.group(1)} {ver.group(1)}")
    rows.sort()
    manifest = root / MANIFEST
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("\n".join(rows) + "\n")
    return len(rows)


def _remove_stale_roots(settings: Settings, keep: Path) -> None:
    for old in settings.cache_dir.glob("asterisk-root-*"):
        if old == keep or not old.is_dir():
            continue
        if mounts_under(old):
            log.warning("asterisk_root.stale_in_use", path=str(old))
            continue
        shutil.rmtree(old, ignore_errors=True)
