"""`berth --help`, `berth help [COMMAND [SUBCOMMAND]]`, `COMMAND --help`,
`--version` and the exit codes of usage errors (docs/cli.md).  The build's
berth binary alone: none of this needs a daemon, a store or root."""
import json
import re
import subprocess

import pytest

from test_cli_tasks import BERTH_BIN, ENV, REPO, no_sanitizer_report

# What berth runs: every one of them must be in the usage and in docs/cli.md.
COMMANDS = {"run", "ps", "logs", "stop", "exec", "inspect", "register", "task-definitions",
            "service", "pull", "images", "rmi", "inspect-image", "daemon", "help", "version",
            "task-image", "host-network", "volume", "lb"}
SERVICE_SUBCOMMANDS = {"create", "update", "ls", "inspect", "rm", "events"}
LB_SUBCOMMANDS = {"ls", "targets"}


def berth(*args):
    p = subprocess.run([BERTH_BIN, *args], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL, env=ENV)
    no_sanitizer_report(p.stderr)
    return p.returncode, p.stdout, p.stderr


def listed(text, heading):
    """The names a usage lists under `heading:`, up to the blank line."""
    block = text.split(f"\n{heading}:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines()]


def usage_options(usage):
    return set(re.findall(r"--[a-z][a-z-]*", usage))


@pytest.fixture(scope="module")
def usage():
    rc, out, err = berth("--help")
    assert rc == 0 and err == "", err
    return out


def test_help_lists_every_command(usage):
    assert usage.startswith("usage: berth [--root DIR]")
    assert set(listed(usage, "commands")) == COMMANDS
    for args in (["-h"], ["help"], ["--output", "json", "help"]):
        assert berth(*args) == (0, usage, ""), args
    # The shared options are described, not only named.
    described = set(listed(usage, "options (before or after COMMAND)"))
    synopsis = usage.split("\n\n", 1)[0]
    assert usage_options(synopsis) - {"--help", "--version"} <= described
    doc = (REPO / "docs/cli.md").read_text()
    for cmd in COMMANDS:
        assert f"berth {cmd}" in doc, f"docs/cli.md does not describe `berth {cmd}`"


def command_help(*words):
    """`berth WORDS --help`, which `berth help WORDS` and `-h` must equal."""
    rc, out, err = berth(*words, "--help")
    assert (rc, err) == (0, ""), (words, err)
    assert out.startswith(f"usage: berth {' '.join(words)}"), out
    assert berth("help", *words) == (0, out, ""), words
    assert berth(*words, "-h") == (0, out, ""), words
    return out


@pytest.mark.parametrize("cmd", sorted(COMMANDS - {"service", "lb"}))
def test_every_command_has_help(usage, cmd):
    out = command_help(cmd)
    if cmd == "daemon":   # berthd's own usage; its options: docs/operations.md
        return
    synopsis, _, body = out.partition("\n\n")
    # Each option the synopsis names is told: in the command's text or, for
    # the shared ones, in the full usage.
    shared = set(listed(usage, "options (before or after COMMAND)"))
    untold = {o for o in usage_options(synopsis) - shared if o not in body}
    assert not untold, f"{cmd} --help does not describe {untold}"
    assert body.strip(), f"{cmd} --help says nothing beyond its usage"


def test_service_and_its_subcommands_have_help():
    rc, out, err = berth("service", "--help")
    assert (rc, err) == (0, "") and out.startswith("usage: berth service SUBCOMMAND")
    assert set(listed(out, "subcommands")) == SERVICE_SUBCOMMANDS
    assert berth("help", "service") == (0, out, "")
    for sub in SERVICE_SUBCOMMANDS:
        synopsis, _, body = command_help("service", sub).partition("\n\n")
        options = usage_options(synopsis) - {"--cluster", "--output"}
        assert all(o in body for o in options), (sub, options, body)


def test_lb_and_its_subcommands_have_help():
    rc, out, err = berth("lb", "--help")
    assert (rc, err) == (0, "") and out.startswith("usage: berth lb SUBCOMMAND")
    assert set(listed(out, "subcommands")) == LB_SUBCOMMANDS
    assert berth("help", "lb") == (0, out, "")
    for sub in LB_SUBCOMMANDS:
        synopsis, _, body = command_help("lb", sub).partition("\n\n")
        assert body.strip(), sub


@pytest.mark.parametrize("args, first", [
    ([], None), (["nope"], 'berth: unknown command "nope"'),
    (["help", "nope"], 'berth: help: unknown command "nope"'),
    (["--bogus"], "berth: unrecognized option '--bogus'"), (["--version", "ps"], None),
], ids=["none", "nope", "help-nope", "bogus", "version-ps"])
def test_usage_errors_print_the_usage_on_stderr(usage, args, first):
    rc, out, err = berth(*args)
    assert (rc, out) == (2, ""), err
    if first:
        assert err.startswith(first + "\n"), err
    synopsis = usage.split("\n\n", 1)[0] + "\n"
    assert err.endswith(synopsis if args == ["--bogus"] else usage), err


@pytest.mark.parametrize("args", [
    ["ps", "extra"], ["version", "extra"], ["images", "a"], ["rmi"], ["host-network", "x"],
    ["run", "--memory", "lots", "busybox"], ["service"], ["service", "nope"],
    ["service", "create", "web"], ["logs", "--follow=yes", "x"], ["lb"], ["lb", "nope"],
    ["lb", "targets"],
    # `help run IMAGE` must not run IMAGE with --help: run has no subcommands.
    ["help", "run", "busybox"], ["help", "service", "ls", "extra"],
], ids=lambda a: "-".join(a))
def test_command_usage_errors_exit_2(args):
    rc, out, err = berth("--socket", "/nonexistent/berth.sock", *args)
    assert (rc, out) == (2, ""), err
    assert "usage: berth" in err and "cannot reach the berth daemon" not in err


def test_version():
    want = re.search(r"^VERSION\s*:=\s*(\S+)$", (REPO / "Makefile").read_text(), re.M)[1]
    rc, out, err = berth("--version")
    assert (rc, err) == (0, "")
    m = re.fullmatch(r"berth (\S+)(?: \(git ([0-9a-f]{7,40})\))?\n", out)
    assert m and m[1] == want, out
    assert berth("version") == (0, out, "")
    assert berth("--output", "json", "version") == berth("--output", "json", "--version")
    doc = json.loads(berth("version", "--output", "json")[1])
    assert doc == {"version": want, **({"commit": m[2]} if m[2] else {})}
    # The commit is one of this repository's (built from this checkout).
    if m[2] and (REPO / ".git").exists():
        assert subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{m[2]}^{{commit}}"],
                              capture_output=True).returncode == 0, m[2]


def test_errors_exit_1_run_failures_125(tmp_path):
    sock = str(tmp_path / "none.sock")
    rc, out, err = berth("--socket", sock, "ps")
    assert (rc, out) == (1, "") and err.startswith("berth: cannot reach the berth daemon")
    rc, out, err = berth("--root", str(tmp_path / "store"), "inspect-image", "nothing:1")
    assert (rc, out) == (1, "") and err.startswith("berth: ") and "nothing" in err
    # run exits with the task's code, so its own failures are 125, as docker's.
    rc, out, err = berth("--socket", sock, "run", "busybox", "true")
    assert (rc, out) == (125, "") and err.startswith("berth: cannot reach the berth daemon")
