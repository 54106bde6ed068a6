"""`python -m bot emulate` and `python -m bot vary/imagine/check` as separate processes, as an operator runs them."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import make_png

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXCORD_") and not k.endswith("_API_KEY")}
    env.pop("DISCORD_TOKEN", None)
    env.update({"FLUXCORD_DATABASE": str(tmp_path / "cli.db"), "PYTHONUNBUFFERED": "1", **extra})
    return env


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    tmp = tmp_path_factory.mktemp("emu")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "emulate", "--port", str(port), "--time-scale", "0.02"],
        cwd=ROOT,
        env=clean_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert f"export FLUXCORD_SEGMIND_BASE_URL=http://127.0.0.1:{port}" in lines[2]
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=10)


def bot(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(tmp_path, FLUXCORD_SEGMIND_BASE_URL=url, FLUXCORD_SEGMIND_API_KEY="any-key")
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "some.jpg"
    with Image.open(io.BytesIO(make_png(400, 300))) as image:
        image.save(path, "JPEG")
    return path


def images_in(folder: Path) -> list[tuple[str | None, tuple[int, int]]]:
    """(format, size) of each image in the folder."""
    found = []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as image:
            found.append((image.format, image.size))
    return found


def test_vary_writes_four_16_9_webp_images(tmp_path: Path, emulator_url: str, photo: Path) -> None:
    out = tmp_path / "out"
    result = bot(
        tmp_path,
        emulator_url,
        "vary",
        str(photo),
        "--count",
        "4",
        "--aspect-ratio",
        "16:9",
        "--format",
        "webp",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert images_in(out) == [("WEBP", (1344, 768))] * 4
    assert "seed" in result.stdout and "1344×768" in result.stdout


def test_quarter_megapixel_gives_672x384(tmp_path: Path, emulator_url: str, photo: Path) -> None:
    out = tmp_path / "out"
    result = bot(
        tmp_path, emulator_url, "vary", str(photo), "--aspect-ratio", "16:9", "--megapixels", "0.25", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert images_in(out) == [("WEBP", (672, 384))]


def test_the_same_seed_gives_identical_files(tmp_path: Path, emulator_url: str, photo: Path) -> None:
    digests = []
    for run in ("a", "b", "c"):
        out = tmp_path / run
        seed = "77" if run != "c" else "78"
        result = bot(tmp_path, emulator_url, "vary", str(photo), "--seed", seed, "--count", "2", "--out", str(out))
        assert result.returncode == 0, result.stderr
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())])
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_imagine_writes_the_requested_size(tmp_path: Path, emulator_url: str) -> None:
    out = tmp_path / "out"
    result = bot(
        tmp_path,
        emulator_url,
        "imagine",
        "a lighthouse at dawn",
        "--aspect-ratio",
        "9:16",
        "--format",
        "png",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert images_in(out) == [("PNG", (768, 1344))]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--steps", "9"], "--steps must be between 1 and 4"),
        (["--guidance", "3"], "--guidance only applies to the dev model"),
        (["--aspect-ratio", "7:3"], "--aspect-ratio must be one of"),
        (["--count", "5"], "--count must be between 1 and 4"),
        (["--model", "dev", "--steps", "51"], "--steps must be between 1 and 50"),
    ],
)
def test_bad_options_get_one_sentence_and_exit_2(
    tmp_path: Path, emulator_url: str, photo: Path, args: list[str], expected: str
) -> None:
    result = bot(tmp_path, emulator_url, "vary", str(photo), *args, "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stderr.strip().count("\n") == 0 and result.stderr.strip().endswith(".")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"", b"just some text\n", make_png(200, 200)[:300], b"\x00" * 64])
def test_bad_files_get_one_sentence_and_exit_2(tmp_path: Path, emulator_url: str, content: bytes) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    result = bot(tmp_path, emulator_url, "vary", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.strip().endswith(".")


def test_a_missing_file_is_named(tmp_path: Path, emulator_url: str) -> None:
    result = bot(tmp_path, emulator_url, "vary", str(tmp_path / "nope.png"))
    assert result.returncode == 2
    assert "nope.png" in result.stderr


def test_check_names_what_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check"],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "FLUXCORD_DISCORD_TOKEN" in result.stdout and "FLUXCORD_SEGMIND_API_KEY" in result.stdout
    ok = subprocess.run(
        [sys.executable, "-m", "bot", "check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(tmp_path, DISCORD_TOKEN="secret-token-value", SEGMIND_API_KEY="SG_secret"),
    )
    assert ok.returncode == 0, ok.stdout
    assert "secret-token-value" not in ok.stdout + ok.stderr and "SG_secret" not in ok.stdout + ok.stderr


def test_credits_grant_and_show_use_the_same_ledger(tmp_path: Path) -> None:
    env = clean_env(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "credits", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    granted = run("grant", "111", "222", "50", "--reason", "welcome")
    assert granted.returncode == 0, granted.stderr
    assert "spendable 70 (allowance 20 + granted 50), held 0" in granted.stdout
    taken = run("grant", "111", "222", "-80")
    assert taken.returncode == 0 and "spendable 20 (allowance 20 + granted 0)" in taken.stdout
    shown = run("show", "111", "222")
    assert shown.returncode == 0
    assert "revoke" in shown.stdout and "grant" in shown.stdout and "welcome" in shown.stdout
    refused = run("grant", "111", "222", "0")
    assert refused.returncode == 2 and refused.stderr.strip() == "The amount must be between 1 and 1000000."
