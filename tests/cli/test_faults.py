"""Every `imagine` subcommand and the generator, as real processes, against every database fault an
operator meets, and every argument the parser takes but nothing else can: one line on stderr naming
what to fix, the exit status of its kind (jobs/errors.py), no traceback, never a password, nothing
written.

Each case is a whole Python process (about a second of imports), so each matrix runs side by side once
per module and the tests read its results."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli import main
from jobs.errors import DatabaseUnavailable, OutputNotWritable, SettingsError, UsageError
from tests.jobs.databases import require_postgres

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-pw"
PARALLEL = 4
pytestmark = pytest.mark.timeout(180)

# Every subcommand, with arguments that would succeed on a healthy database.
COMMANDS = {
    "serve": ["serve", "--no-render"],
    "migrate": ["migrate"],
    "enqueue": ["enqueue", "a cat"],
    "status": ["status", "1"],
    "cancel": ["cancel", "1"],
    "fetch": ["fetch", "1"],
    "usage": ["usage"],
    "retention": ["retention"],
    "dashboard": ["dashboard"],
    "render": ["a cat in the snow"],
    "generator": ["--generator"],  # python -m generator.serve, which `serve` starts and GPU machines run
}


@dataclass
class Ran:
    argv: list[str]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"imagine {' '.join(self.argv)} → {self.code}, stderr {self.err!r}"


Argv = Sequence[str | bytes]


def imagine(argv: Argv, env: dict[str, str], cwd: Path) -> Ran:
    module = ["-m", "generator.serve"] if argv == ["--generator"] else ["-m", "bot.cli", *argv]
    done = subprocess.run([sys.executable, *module], cwd=cwd, env=env, capture_output=True, timeout=60)
    shown = [a.decode(errors="replace") if isinstance(a, bytes) else a for a in argv]
    return Ran(shown, done.returncode, done.stdout.decode(), done.stderr.decode(errors="replace"))


def imagine_all(cases: Sequence[tuple[Argv, dict[str, str]]], cwd: Path) -> list[Ran]:
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return list(pool.map(lambda case: imagine(case[0], case[1], cwd), cases))


def clean_env(root: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGINE_")}
    env.update(
        PYTHONPATH=str(ROOT),
        IMAGINE_DATA_DIR=str(root / "data"),
        IMAGINE_DASHBOARD_PASSWORD="dashboard-password-long-enough",
        IMAGINE_RETENTION_IMAGES_DAYS="30",  # so `imagine retention` has work to do
        HF_HUB_OFFLINE="1",
    )
    env.update({f"IMAGINE_{name.upper()}": value for name, value in settings.items()})
    return env


def assert_one_line(ran: Ran, status: int, *words: str) -> None:
    lines = ran.err.splitlines()
    assert ran.code == status and len(lines) == 1, ran
    assert lines[0].startswith("imagine"), ran
    assert "Traceback" not in ran.err and PASSWORD not in ran.err + ran.out, ran
    for word in words:
        assert word in lines[0], (word, ran)


# --- database faults ----------------------------------------------------------------------------------


@dataclass
class Fault:
    settings: dict[str, str]
    setting: str  # the setting the line must name
    status: int = DatabaseUnavailable.exit_status
    needs_postgres: bool = False  # a server that answers is what refuses the database or the role


def _postgres(host: str = "127.0.0.1", port: str = "5432", user: str = "imagine", db: str = "test") -> str:
    return f"postgresql+asyncpg://{user}:{PASSWORD}@{host}:{port}/{db}"


NOT_A_DATABASE = "notes.db"
A_FILE = "a-file"
FAULTS = {
    "connection refused": Fault({"database_url": _postgres(port="1")}, "IMAGINE_DATABASE_URL"),
    "unknown host": Fault({"database_url": _postgres(host="db.example.invalid")}, "IMAGINE_DATABASE_URL"),
    "no such database": Fault(
        {"database_url": _postgres(user="postgres", db="imagine_no_such_database")},
        "IMAGINE_DATABASE_URL",
        needs_postgres=True,
    ),
    "no such role": Fault(
        {"database_url": _postgres(user="imagine_no_such_role")}, "IMAGINE_DATABASE_URL", needs_postgres=True
    ),
    "port out of range": Fault(
        {"database_url": _postgres(port="99999")}, "IMAGINE_DATABASE_URL", SettingsError.exit_status
    ),
    "not a database": Fault(
        {"database_url": f"sqlite+aiosqlite:///{{root}}/{NOT_A_DATABASE}"}, "IMAGINE_DATABASE_URL"
    ),
    "data dir through a file": Fault({"data_dir": f"{{root}}/{A_FILE}/data"}, "IMAGINE_DATA_DIR"),
}


@pytest.fixture(scope="module")
def faults_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    (root / NOT_A_DATABASE).write_bytes(b"these are my notes, not a database\n" * 200)
    (root / A_FILE).write_text("a regular file where a directory should be\n")
    return root


@pytest.fixture(scope="module")
def fault_runs(faults_root: Path) -> dict[tuple[str, str], Ran]:
    cases = [(fault, command) for fault in FAULTS for command in COMMANDS]
    runs = imagine_all(
        [
            (
                COMMANDS[command],
                clean_env(
                    faults_root, **{k: v.format(root=faults_root) for k, v in FAULTS[fault].settings.items()}
                ),
            )
            for fault, command in cases
        ],
        faults_root,
    )
    return dict(zip(cases, runs, strict=True))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("fault", FAULTS)
def test_every_subcommand_answers_a_database_fault_in_one_line(
    fault: str, command: str, fault_runs: dict[tuple[str, str], Ran]
) -> None:
    if FAULTS[fault].needs_postgres:
        require_postgres()
    assert_one_line(fault_runs[fault, command], FAULTS[fault].status, FAULTS[fault].setting)


def test_the_faults_wrote_nothing(faults_root: Path, fault_runs: dict[tuple[str, str], Ran]) -> None:
    assert len(fault_runs) == len(FAULTS) * len(COMMANDS)
    assert (faults_root / NOT_A_DATABASE).read_bytes() == b"these are my notes, not a database\n" * 200
    assert (faults_root / A_FILE).read_text() == "a regular file where a directory should be\n"
    assert sorted(p.name for p in faults_root.iterdir()) == [A_FILE, NOT_A_DATABASE]


@pytest.fixture
def read_only_database(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A migrated SQLite file (one queued job in it) that not even root may write (`chattr +i`)."""
    env = clean_env(tmp_path)
    assert imagine(["migrate"], env, tmp_path).code == 0
    assert imagine(["enqueue", "a fox"], env, tmp_path).code == 0
    path = tmp_path / "data" / "imagine.db"
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and an ext4/xfs file system)")
    try:
        yield env, path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_database_refuses_writes_in_one_line_and_still_answers_reads(
    read_only_database: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, path = read_only_database
    before = path.read_bytes()
    writes = ["enqueue", "cancel", "render", "serve", "dashboard", "generator"]
    for ran in imagine_all([(COMMANDS[name], env) for name in writes], tmp_path):
        assert_one_line(ran, DatabaseUnavailable.exit_status, "read-only", "IMAGINE_DATABASE_URL")
    assert imagine(["status", "1"], env, tmp_path).out.startswith("job 1: queued")
    assert path.read_bytes() == before
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (1,)


# --- arguments ----------------------------------------------------------------------------------------

TOO_BIG_ID = str(2**63)
NO_DIRECTORY = "/proc/imagine/grid.png"  # /proc takes no new directory, not even from root
# case → argv, the exit status, a word the line must hold
BAD_ARGUMENTS: dict[str, tuple[Argv, int, str]] = {
    "status id ≥ 2⁶³": (["status", TOO_BIG_ID], UsageError.exit_status, "job_id"),
    "cancel id ≥ 2⁶³": (["cancel", TOO_BIG_ID], UsageError.exit_status, "job_id"),
    "fetch id ≥ 2⁶³": (["fetch", TOO_BIG_ID], UsageError.exit_status, "job_id"),
    "upscale id ≥ 2⁶³": (["upscale", TOO_BIG_ID, "1"], UsageError.exit_status, "job_id"),
    "upscale image 0": (["upscale", "1", "0"], UsageError.exit_status, "index"),
    "upscale image not a number": (["upscale", "1", "first"], UsageError.exit_status, "index"),
    "usage days NaN": (["usage", "--days", "nan"], UsageError.exit_status, "--days"),
    "usage days infinite": (["usage", "--days", "inf"], UsageError.exit_status, "--days"),
    "usage days huge": (["usage", "--days", "1e400"], UsageError.exit_status, "--days"),
    "usage days past any clock": (["usage", "--days", "100000000"], UsageError.exit_status, "--days"),
    "usage days negative": (["usage", "--days", "-1"], UsageError.exit_status, "--days"),
    "images out of range": (["enqueue", "a cat", "--images", "99"], 1, "images"),
    "user id too long": (["enqueue", "a cat", "--user", "u" * 500], 1, "user"),
    "empty user id": (["enqueue", "a cat", "--user", ""], 1, "user"),
    "invalid UTF-8 prompt": (["enqueue", b"caf\xe9 au lait"], UsageError.exit_status, "not valid UTF-8"),
    "invalid UTF-8 default command": ([b"caf\xe9 au lait"], UsageError.exit_status, "not valid UTF-8"),
    "invalid UTF-8 option": (["enqueue", "a cat", "--user", b"\xff"], UsageError.exit_status, "UTF-8"),
    "--out a directory": (["a cat", "--out", "."], OutputNotWritable.exit_status, "is a directory"),
    "--out nowhere": (["a cat", "--out", NO_DIRECTORY], OutputNotWritable.exit_status, NO_DIRECTORY),
    "--out inside a file": (
        ["a cat", "--out", f"{A_FILE}/grid.png"],
        OutputNotWritable.exit_status,
        "a-file is a file, not a directory",
    ),
}


@pytest.fixture
def migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated data directory that `main()` in this process uses."""
    (tmp_path / A_FILE).write_text("x")
    monkeypatch.chdir(tmp_path)
    for name, value in clean_env(tmp_path).items():
        if name.startswith("IMAGINE_"):
            monkeypatch.setenv(name, value)
    assert main(["migrate"]) == 0
    return tmp_path


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_arguments_nothing_can_take_are_refused_in_one_line(
    case: str, migrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (Python hands `main` undecodable bytes as surrogate escapes, as here)."""
    argv, status, word = BAD_ARGUMENTS[case]
    capsys.readouterr()
    text = [os.fsdecode(a) if isinstance(a, bytes) else a for a in argv]
    code = main(text)
    out, err = capsys.readouterr()
    assert_one_line(Ran(text, code, out, err), status, word)
    with sqlite3.connect(migrated / "data" / "imagine.db") as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)  # nothing drawn for nobody


def test_invalid_utf8_from_a_real_shell_is_refused_in_one_line(tmp_path: Path) -> None:
    ran = imagine(["enqueue", b"caf\xe9 au lait"], clean_env(tmp_path), tmp_path)
    assert_one_line(ran, UsageError.exit_status, "not valid UTF-8")


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    assert imagine(["migrate"], env, tmp_path).code == 0
    assert imagine(["enqueue", "a cat"], env, tmp_path).code == 0
    # `imagine usage --by user | head -0`: the pipe is closed before anything is written.
    with subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "usage", "--by", "user"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        err = process.stderr.read().decode()
        code = process.wait(60)
    assert (code, err) == (141, "")
