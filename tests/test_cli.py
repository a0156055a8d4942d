"""The CLI through its real entry point: output, JSON listings, and one-line errors."""

import json
import subprocess
import sys

import pytest

from tests.conftest import run_cli


def assert_clean_error(r, pattern):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert any(pattern in l for l in lines), r.stderr


def test_help_does_not_import_torch():
    code = ("import sys; from rnnchat.cli import _run\n"  # main() ends a help run with os._exit
            "assert _run(['--help']) == 0\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint('clean')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr


def test_listing_commands_do_not_import_torch(make_checkpoint):
    path = make_checkpoint()
    code = ("import sys; from rnnchat.cli import main\n"
            f"for args in (['models'], ['inspect', {str(path)!r}, '--json']):\n"
            "    try:\n        main(args)\n    except SystemExit as exc:\n        assert not exc.code\n"
            "assert 'torch' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_generate_streams_continuation_only(make_checkpoint):
    path = make_checkpoint()
    r = run_cli("generate", "ALICE:", "--model", str(path), "--seed", "3", "--max-chars", "40")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == 40 and not r.stdout.startswith("ALICE:")
    again = run_cli("generate", "ALICE:", "--model", str(path), "--seed", "3", "--max-chars", "40")
    assert again.stdout == r.stdout


def test_generate_reads_stdin_and_reports_stats(make_checkpoint):
    path = make_checkpoint()
    r = run_cli("generate", "--model", str(path), "-n", "20", "--stats", "--temperature", "0", input="BOB:\n")
    assert r.returncode == 0 and len(r.stdout) == 20
    assert "chars/s" in r.stderr and "device cpu" in r.stderr
    assert "BLAS thread" in r.stderr and "numpy steps" in r.stderr
    fixed = run_cli("generate", "--model", str(path), "-n", "20", "--stats", input="BOB:\n",
                    env={"RNNCHAT_BLAS_THREADS": "1"})
    assert "(numpy steps, 1 BLAS thread)" in fixed.stderr


def test_generate_tells_which_prompt_characters_were_dropped(make_checkpoint):
    r = run_cli("generate", "ALICE 🙂 你", "--model", str(make_checkpoint()), "-n", "5")
    assert r.returncode == 0 and "🙂你" in r.stderr


@pytest.mark.parametrize("args,pattern", [
    (["generate", "x", "--temperature", "-1"], "temperature"),
    (["generate", "x", "--temperature", "nan"], "not a finite number"),
    (["generate", "x", "--top-p", "0"], "top-p"),
    (["generate", "x", "--model", "no-such-model"], "no model named 'no-such-model'"),
    (["generate", "x", "--device", "cuda:7"], "cuda:7"),
    (["train", "/nonexistent/corpus.txt", "--steps", "5", "--name", "x"], "does not exist"),
    (["train", "corpora/tiny.txt", "--name", "x"], "--steps N or --budget"),
    (["train", "corpora/tiny.txt", "--steps", "5", "--name", "Bad Name"], "--name"),
    (["train", "corpora/tiny.txt", "--steps", "5", "--name", "x", "--cell", "nope"], "cell 'nope' is not installed"),
    (["train", "corpora/tiny.txt", "--budget", "soon", "--name", "x"], "not a duration"),
    (["inspect", "/nonexistent.safetensors"], "no model named '/nonexistent.safetensors' and no such file"),
    (["train", "corpora/tiny.txt", "--steps", "5", "--name", "x", "--hint", "x" * 81], "--hint must be a string of at most 80"),
    (["train", "corpora/tiny.txt", "--steps", "5", "--name", "x", "--description", "x" * 501], "--description must be"),
    (["train", "--resume", "x", "--hint", "a title"], "--hint and --description go with a new run"),
])
def test_user_mistakes_are_one_line_errors(args, pattern):
    r = run_cli(*args)
    assert_clean_error(r, pattern)


def test_bad_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04garbage")
    r = run_cli("generate", "x", "--model", str(bad))
    assert_clean_error(r, "pickle")


@pytest.mark.slow  # a real process or a training run: 4-6 s
def test_train_then_list_inspect_and_generate_by_name(tiny_corpus):
    r = run_cli("train", str(tiny_corpus), "--hidden", "8", "--embedding", "4", "--layers", "1",
                "--steps", "6", "--seq-len", "16", "--batch-size", "4", "--name", "mini", "-q",
                "--hint", "a name, e.g. ALICE:", "--description", "A tiny test model.\x1b[31m")
    assert r.returncode == 0, r.stderr
    rows = json.loads(run_cli("models", "--json").stdout)
    mini = next(row for row in rows if row["name"] == "mini")
    assert mini["cell"] == "lstm" and mini["hidden"] == 8 and isinstance(mini["val_loss"], float)
    assert mini["hint"] == "a name, e.g. ALICE:" and mini["description"] == "A tiny test model.\x1b[31m"
    listed = run_cli("models").stdout
    assert "try: a name, e.g. ALICE: · A tiny test model.\\x1b[31m" in listed and "\x1b" not in listed
    assert mini["parameters"] > 0 and mini["plugin"] == "rnnchat.checkpoints"
    info = json.loads(run_cli("inspect", "mini", "--json").stdout)
    assert info["corpus"]["name"] == "tiny" and len(info["corpus"]["sha256"]) == 64
    assert "layers.0.weight_ih" in info["tensors"]
    r = run_cli("generate", "ALICE:", "--model", "mini", "-n", "10")
    assert r.returncode == 0 and len(r.stdout) == 10


def test_cells_json():
    rows = json.loads(run_cli("cells", "--json").stdout)
    assert {"rnn", "lstm", "gru"} <= {r["name"] for r in rows}


def test_python_dash_m_works():
    r = run_cli("--version")
    assert r.returncode == 0 and "rnnchat" in r.stdout


@pytest.mark.parametrize("outcome, code, stderr", [("raise RnnchatError('a peer died')", 1, "error: a peer died"),
                                                  ("raise SystemExit(130)", 130, ""), ("pass", 0, "")])
def test_a_process_that_asks_for_no_teardown_ends_at_once_with_its_status(outcome, code, stderr):
    # a torch.distributed rank leaves threads that can block (or abort) the interpreter's teardown:
    # the CLI prints the command's one line and ends the process with the command's status
    program = ("import threading, time\n"
               "from rnnchat.cli import cli, main\n"
               "from rnnchat.core.errors import RnnchatError\n"
               "from rnnchat.core.process_exit import end_without_teardown\n"
               "threading.Thread(target=time.sleep, args=(600,)).start()\n"
               "@cli.command('job')\n"
               f"def job():\n    end_without_teardown()\n    {outcome}\n"
               "main(['job'])\n")
    r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert r.returncode == code
    assert r.stderr.strip() == stderr


def test_help_ends_without_teardown_but_prints_everything():
    """``rnnchat --help`` skips the interpreter's teardown (nothing ran): the page still arrives whole
    through a pipe, and the exit status is 0."""
    import subprocess
    import sys

    full = subprocess.run([sys.executable, "-m", "rnnchat", "--help"], capture_output=True, text=True, timeout=60)
    assert full.returncode == 0 and full.stdout.startswith("Usage: rnnchat")
    assert "models" in full.stdout and full.stdout.endswith("\n") and full.stderr == ""
