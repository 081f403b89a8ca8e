"""`sluice --check -c FILE` on files an operator may well write: YAML
features the config gives no meaning to, odd encodings, big and deep files,
and the summary. Every answer is exit 2 with one line per error, each at
FILE:LINE:COL, or exit 0 with the whole summary; never a crash."""
import os
import subprocess

from harness import SLUICE, config, free_port


def check(path, timeout=20):
    return subprocess.run([SLUICE, "--check", "-c", str(path)], capture_output=True,
                          timeout=timeout)


def error_lines(r, path):
    """The error lines of a refused file, checked for the one-per-line form."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.decode().splitlines()
    assert lines[-1] == "sluice: %s: %d error%s" % (path, len(lines) - 1,
                                                    "" if len(lines) == 2 else "s"), lines
    for line in lines[:-1]:
        assert line.startswith("%s:" % path), line
    return [l[len(str(path)) + 1:] for l in lines[:-1]]


def test_aliases_merges_and_tags_do_not_hide_the_other_errors(tmp_path):
    """An alias stopped the parse: the file's other errors came one run at a
    time, and a tag the config gives no meaning to (`!custom`) or that does
    not fit its value (`!!map 5`) passed without a word."""
    path = tmp_path / "sluice.yaml"
    path.write_text(config(free_port(), {"blue": ["127.0.0.1:9"]}, extra=(
        "defaults: &d { weight: 2 }\n"
        "limits:\n"
        "  <<: *d\n"
        "  head_bytes: !custom 16KiB\n"
        "  headers: !!map 5\n"
        "  frame_bytes: *d\n"
        "timeouts: { conect: 1s }\n")))
    text = path.read_text().split("\n")
    line = {l.split(":")[0].strip(): i + 1 for i, l in enumerate(text)}
    assert error_lines(check(path), path) == [
        '%d:1: defaults: unknown key "defaults"' % line["defaults"],
        "%d:3: merge keys (<<) are not supported (expected the keys written out)" % line["<<"],
        '%d:15: unknown tag "!custom" (expected no tag, or one of YAML\'s own: !!str, !!int, '
        "!!float, !!bool, !!null, !!map, !!seq)" % line["head_bytes"],
        '%d:12: tag "!!map" on a scalar (expected no tag)' % line["headers"],
        "%d:16: syntax error: aliases (*name) are not supported" % line["frame_bytes"],
        '%d:13: timeouts.conect: unknown key "conect" (did you mean "connect"?)'
        % line["timeouts"],
    ]


def test_positions_with_a_bom_and_crlf_line_ends(tmp_path):
    """A file saved by a Windows editor: a byte order mark, CR LF line ends
    and a Latin-1 byte. The byte is reported at its own line and column (it
    was one column off after a BOM, on the next byte after a Latin-1 letter,
    and on line 1 with CR line ends)."""
    text = config(free_port(), {"blue": ["127.0.0.1:9"]}).replace("app:", "caf\xe9:")
    for name, ending in (("crlf.yaml", "\r\n"), ("cr.yaml", "\r")):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", ending).encode("latin-1"))
        line = text.split("\n").index("  caf\xe9:") + 1
        assert error_lines(check(path), path) == [
            "%d:6: syntax error: invalid UTF-8 sequence starting with this byte (0xE9) "
            "(expected UTF-8 text)" % line]
    # The same file in UTF-8 passes, BOM and CR LF included.
    path = tmp_path / "utf8.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    r = check(path)
    assert r.returncode == 0 and r.stdout.decode().endswith("%s: ok\n" % path), r.stderr


def test_one_listener_address_spelled_two_ways(tmp_path):
    """Two listeners on one socket address passed when spelled differently
    ("[::1]" and "[0:0::1]"); with SO_REUSEPORT both would bind, and clients
    would land on either listener at random. Refused at the second, naming
    the first's line and column; a start refuses it the same way."""
    port = free_port()
    path = tmp_path / "sluice.yaml"
    first = '  - address: "[::1]:%d"\n' % port
    path.write_text(config(port, {"blue": ["127.0.0.1:9"]}, listen_host="::1").replace(
        first, first + '  - address: "[0:0::1]:%d"\n' % port))
    lines = path.read_text().split("\n")
    first = next(i for i, l in enumerate(lines) if "[::1]" in l) + 1
    second = next(i for i, l in enumerate(lines) if "[0:0::1]" in l) + 1
    want = ["%d:14: listeners[1].address: duplicate listener address [0:0::1]:%d "
            "(first at %d:14)" % (second, port, first)]
    assert error_lines(check(path), path) == want
    r = subprocess.run([SLUICE, "-c", str(path)], capture_output=True, timeout=20)
    assert error_lines(r, path) == want


def test_a_long_summary_is_printed_whole_with_one_verdict(tmp_path):
    """400 pools: the summary was cut at main.c's 16 KiB (since 77779dd with
    a note saying so), and it began with "config FILE: OK" and ended with
    "FILE: ok", the verdict twice. Now every pool is listed, and the last
    line, the one scripts look for, is the only verdict."""
    pools = {"p%d" % i: ["127.0.0.%d:%d" % (i % 250 + 1, 1000 + i)] for i in range(400)}
    path = tmp_path / "sluice.yaml"
    path.write_text(config(free_port(), pools))
    r = check(path)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert len(text) > 16384, len(text)
    out = text.split("\n")
    assert out[-1] == "" and out[-2] == "%s: ok" % path, out[-3:]
    assert out[0] == "listeners:", out[:2]
    assert "cut" not in text and "OK" not in text, [l for l in out if "cut" in l or "OK" in l]
    listed = [l.split()[0] for l in out if l.startswith("  p") and " balance " in l]
    assert listed == ["p%d" % i for i in range(400)], listed[-3:]
    assert out[-3].startswith("log: "), out[-3:]


def test_big_deep_empty_and_unreadable_files(tmp_path):
    """Whatever the file, an answer: never a crash or a hang."""
    good = config(free_port(), {"blue": ["127.0.0.1:9"]})
    cases = []
    big = tmp_path / "big.yaml"     # 10 MB, most of it comments
    big.write_text(good + ("#" + "x" * 99 + "\n") * 100000)
    assert check(big).returncode == 0
    deep = tmp_path / "deep.yaml"   # 10,000 levels: bounded, not recursed into
    deep.write_text("workers: " + "[" * 10000 + "]" * 10000 + "\n")
    cases.append((deep, ["1:41: syntax error: nested too deeply"]))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    comments = tmp_path / "comments.yaml"
    comments.write_text("# nothing yet\n")
    for p in (empty, comments):
        cases.append((p, ['1:1: missing required key "%s"' % k
                          for k in ("listeners", "pools", "services")]))
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(good.encode().replace(b"blue:", b"bl\0ue:", 1))
    line = good.split("\n").index("  blue:") + 1
    cases.append((nul, ["%d:5: syntax error: control characters are not allowed (0x00) "
                        "(expected UTF-8 text)" % line]))
    for path, want in cases:
        assert error_lines(check(path), path) == want, path
    r = check(tmp_path)
    assert r.returncode == 2 and r.stderr.decode() == (
        "%s: cannot read: Is a directory\nsluice: %s: 1 error\n" % (tmp_path, tmp_path))
    assert os.path.isdir(tmp_path)
