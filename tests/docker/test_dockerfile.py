"""The Dockerfile, linted by hadolint and replayed without a Docker engine.

No Docker engine runs where the tests run, so the build is replayed: every stage gets its own
directory standing in for its root filesystem, the Dockerfile's own COPY and RUN steps run there
(absolute paths moved under that directory), and the final stage's entrypoint is started from
the venv the build produced. The commands run are read from the Dockerfile, never restated
here, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import exporter
from tests.conftest import deployed_example

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).with_name("hadolint")
PORT = "9841"
OCI_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.licenses",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.source",
)
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
# An absolute path: a "/" at the start of a word, after "=" or a quote, or after ":" in a
# PATH-like list (but not the "//" of a URL).
_ABS_PATH = re.compile(r"(?:(?<=^)|(?<=[\s='\"])|(?<=:)(?!//))/(?=[\w.*])")


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    """One FROM block: its base image, alias, and the state its instructions build up."""

    base: str
    alias: str | None
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    exposed: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    copies_from: list[str] = field(default_factory=list)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comment lines dropped (Docker's rules)."""
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        keyword, _, args = " ".join(parts).partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
        parts = []
    assert not parts, "the Dockerfile ends inside a continued line"
    return out


def expand(text: str, variables: dict[str, str]) -> str:
    """Docker's ${VAR} / $VAR substitution (unknown variables become empty, as in Docker)."""
    return _VAR.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def in_root(root: Path, text: str) -> str:
    """Move every absolute path in `text` under `root`, the stage's stand-in filesystem."""
    return _ABS_PATH.sub(lambda _: f"{root}/", text)


def key_values(args: str) -> Iterator[tuple[str, str]]:
    for word in shlex.split(args):
        key, sep, value = word.partition("=")
        assert sep, f"expected KEY=VALUE, got {word!r}"
        yield key, value


def split_flags(args: str) -> tuple[dict[str, str], str]:
    """Leading `--flag=value` words of COPY/RUN, and the rest."""
    flags: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        key, _, value = word[2:].partition("=")
        flags[key] = value
        rest = rest.lstrip()
    return flags, rest


def copy_into(sources: list[Path], dest: Path, dest_is_dir: bool) -> None:
    """Docker's COPY: a directory source copies its contents; several sources need a dir."""
    into_dir = dest_is_dir or len(sources) > 1
    for src in sources:
        assert src.exists(), f"COPY source {src} does not exist"
        if src.is_dir():
            shutil.copytree(
                src,
                dest,
                dirs_exist_ok=True,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            target = dest / src.name if into_dir else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def replay(instructions: list[Instruction], workspace: Path) -> list[Stage]:
    """Run the Dockerfile's steps, one directory per stage; returns the stages in order."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    # The base image's interpreter stands in for the image's `python`.
    host_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    for ins in instructions:
        if ins.keyword == "ARG" and not stages:
            name, _, default = ins.args.partition("=")
            global_args[name] = default
            continue
        if ins.keyword == "FROM":
            words = expand(ins.args, global_args).split()
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"line {ins.line}: unexpected FROM {ins.args!r}"
            root = workspace / f"stage{len(stages)}"
            root.mkdir()
            stages.append(Stage(base=words[0], alias=alias, root=root))
            continue
        assert stages, f"line {ins.line}: {ins.keyword} before the first FROM"
        stage = stages[-1]
        variables = {**os.environ, **stage.env}
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            stage.env.setdefault(name, global_args.get(name, default.strip('"')))
        elif ins.keyword == "ENV":
            for key, value in key_values(ins.args):
                path_like = in_root(stage.root, value)
                stage.env[key] = expand(path_like, {**variables, "PATH": host_path})
        elif ins.keyword == "LABEL":
            for key, value in key_values(ins.args):
                stage.labels[key] = expand(value, stage.env)
        elif ins.keyword == "WORKDIR":
            stage.workdir = expand(ins.args, stage.env)
            Path(in_root(stage.root, stage.workdir)).mkdir(parents=True, exist_ok=True)
        elif ins.keyword == "COPY":
            flags, rest = split_flags(ins.args)
            *sources, dest = shlex.split(expand(rest, stage.env))
            if "from" in flags:
                (origin,) = [s for s in stages if s.alias == flags["from"]]
                stage.copies_from.extend(sources)
                paths = [Path(in_root(origin.root, s)) for s in sources]
            else:
                paths = [REPO / s for s in sources]
            dest_abs = dest if dest.startswith("/") else f"{stage.workdir.rstrip('/')}/{dest}"
            copy_into(paths, Path(in_root(stage.root, dest_abs)), dest.endswith("/"))
        elif ins.keyword == "RUN":
            flags, command = split_flags(ins.args)
            # Build-cache mounts only speed the build up; the host's pip cache plays their part.
            assert set(flags) <= {"mount"}, f"line {ins.line}: unsupported RUN flags {flags}"
            env = {**os.environ, "PATH": host_path, **stage.env}
            subprocess.run(
                ["/bin/sh", "-ec", in_root(stage.root, command)],
                cwd=in_root(stage.root, stage.workdir),
                env=env,
                check=True,
            )
        elif ins.keyword == "USER":
            stage.user = expand(ins.args, stage.env)
        elif ins.keyword == "EXPOSE":
            stage.exposed.extend(expand(ins.args, stage.env).split())
        elif ins.keyword == "ENTRYPOINT":
            stage.entrypoint = json.loads(ins.args)
        elif ins.keyword == "CMD":
            stage.cmd = json.loads(ins.args)
        else:
            pytest.fail(f"line {ins.line}: the replay does not know {ins.keyword}")
    return stages


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_install(tmp_path: Path) -> None:
    """The lint step is not a no-op: a classic mistake in the same file fails it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text() + "RUN pip install requests\n")
    result = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3013" in result.stdout


def test_parser_joins_continuations_and_drops_comments() -> None:
    text = "# syntax=x\nFROM a AS b\nRUN one \\\n  # inner comment\n  two\nUSER 1\n"
    assert parse_dockerfile(text) == [
        Instruction(2, "FROM", "a AS b"),
        Instruction(3, "RUN", "one two"),
        Instruction(6, "USER", "1"),
    ]


def test_in_root_moves_paths_but_not_urls() -> None:
    root = Path("/tmp/r")
    assert in_root(root, "pip --python /opt/venv/bin/python x") == (
        "pip --python /tmp/r/opt/venv/bin/python x"
    )
    assert in_root(root, "/opt/venv/bin:$PATH") == "/tmp/r/opt/venv/bin:$PATH"
    assert in_root(root, "--find-links=/wheels https://pypi.org/simple") == (
        "--find-links=/tmp/r/wheels https://pypi.org/simple"
    )


def test_dockerignore_lets_every_copied_source_through() -> None:
    """The context is whitelisted: what COPY names must be un-ignored, or the build breaks."""
    allowed = {
        line[1:].strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert "*" in (REPO / ".dockerignore").read_text().splitlines(), "ignore all by default"
    sources = [
        s.rstrip("/")
        for i in parse_dockerfile(DOCKERFILE.read_text())
        if i.keyword == "COPY" and not i.args.startswith("--from")
        for s in shlex.split(i.args)[:-1]
    ]
    assert sources
    assert set(sources) <= allowed, set(sources) - allowed


def test_final_stage_shape() -> None:
    """Two stages; the final one holds only the venv, runs as a fixed non-root UID."""
    instructions = parse_dockerfile(DOCKERFILE.read_text())
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) == 2, "a build stage and a final stage"
    for ins in froms:
        assert re.match(r"^python:\$\{PYTHON_VERSION\}-slim", ins.args), ins.args
    final = instructions[instructions.index(froms[-1]) :]
    copies = [i.args for i in final if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    assert not [i for i in final if i.keyword == "RUN"], "the final stage runs nothing"
    (user,) = [i.args for i in final if i.keyword == "USER"]
    uid, _, gid = user.partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
    assert re.fullmatch(r"[1-9]\d*", uid), user
    assert re.fullmatch(r"[1-9]\d*", gid), user


@pytest.mark.timeout(900)
def test_build_replay_installs_a_working_exporter(tmp_path: Path) -> None:
    """The Dockerfile's own steps, replayed: the entrypoint runs --version and check-config."""
    instructions = parse_dockerfile(DOCKERFILE.read_text())
    first_from = next(n for n, i in enumerate(instructions) if i.keyword == "FROM")
    global_args = dict(i.args.partition("=")[::2] for i in instructions[:first_from])
    # The image's Python is the Python the project is tested with.
    assert global_args.get("PYTHON_VERSION") == f"{sys.version_info[0]}.{sys.version_info[1]}"

    stages = replay(instructions, tmp_path)
    build, final = stages
    assert build.alias == "build"
    assert final.copies_from == ["/opt/venv"]

    assert final.entrypoint == ["connector-exporter"]
    assert final.cmd == ["run"]
    assert final.exposed == [PORT, "9842"]  # /metrics, and the webhook listener
    assert final.user is not None
    assert final.user.split(":")[0] != "0"
    for label in OCI_LABELS:
        assert label in final.labels, f"missing OCI label {label}"
    assert final.labels["org.opencontainers.image.licenses"] == "Apache-2.0"

    venv = final.root / "opt" / "venv"
    assert (venv / "pyvenv.cfg").is_file()
    assert not (venv / "bin" / "pip").exists(), "the runtime venv carries no pip"
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    installed = sorted(p.name for p in site.glob("connector_exporter-*.dist-info"))
    assert installed == [f"connector_exporter-{exporter.__version__}.dist-info"]
    # Installed from the wheel, not as an editable link back into the source tree.
    assert (site / "exporter" / "__init__.py").is_file()

    # The entrypoint as the image would find it: on the final stage's PATH.
    script = shutil.which(final.entrypoint[0], path=final.env["PATH"])
    assert script is not None
    assert Path(script).parent == venv / "bin"
    shebang = Path(script).read_text().splitlines()[0]
    # The venv is built at the path it is copied to, so its shebangs hold in the final image.
    assert shebang == f"#!{build.root}/opt/venv/bin/python"
    python = str(venv / "bin" / "python")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    example, variables = deployed_example(secrets)
    assert variables, "the example should reference its secrets as ${VAR}"
    env = {
        "PATH": final.env["PATH"],
        **{k: v for k, v in final.env.items() if k != "PATH"},
        **variables,
    }

    def entrypoint(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, script, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    version = entrypoint("--version")
    assert version.returncode == 0, version.stderr
    assert exporter.__version__ in version.stdout

    checked = entrypoint("check-config", "--config", str(example))
    assert checked.returncode == 0, checked.stderr

    # The image's default config path (CONNECTOR_EXPORTER_CONFIG) is where the chart mounts it.
    default_config = Path(final.env["CONNECTOR_EXPORTER_CONFIG"])
    assert default_config.is_relative_to(final.root)
    default_config.parent.mkdir(parents=True)
    shutil.copy(example, default_config)
    assert entrypoint("check-config").returncode == 0

    # A missing secret variable is reported, and the secret-free message names it.
    missing = sorted(variables)[0]
    del env[missing]
    invalid = entrypoint("check-config", "--config", str(example))
    assert invalid.returncode == 2
    assert missing in invalid.stderr
