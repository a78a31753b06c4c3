"""Config loading: every bad file gets one exact line per problem, naming file, key path,
what was expected and what was found."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.config import load_config, parse_config
from agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_example_config_passes():
    config = load_config(REPO / "config" / "agent.example.yaml")
    assert config.http.listen == "127.0.0.1"
    assert config.agent.interval == 60.0


def test_a_small_file_gives_defaults_for_the_rest(write_config):
    config = load_config(write_config("agent:\n  log_level: info\n"))
    assert config.agent.shard == "0/1"
    assert config.http.token is None


@pytest.mark.parametrize("text, found", [
    ("", "nothing (the file is empty or holds only comments)"),
    ("# agent:\n#   interval: 60s\n", "nothing (the file is empty or holds only comments)"),
    ("null\n", "nothing (the file is empty or holds only comments)"),
    ("---\n...\n", "nothing (the file is empty or holds only comments)"),
    ("{}\n", "an empty mapping"),
])
def test_an_empty_or_near_empty_file_is_refused(write_config, text, found):
    path = write_config(text)
    assert problems(path) == [f"{path}: expected a mapping of settings at the top level, found {found}"]


BOMB = "".join(['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
               + [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)])


def test_a_yaml_alias_bomb_is_refused_quickly(write_config):
    path = write_config(BOMB)  # 9 levels of 9: 387 million strings once expanded
    assert len(BOMB) < 600
    started = time.monotonic()
    assert problems(path) == [f"{path}: line 6, column 4: expected YAML aliases to expand to at most 100000 nodes, "
                              "found more (an alias bomb?)"]
    assert time.monotonic() - started < 10  # expanded, it would take minutes and gigabytes


def test_a_recursive_alias_is_refused(write_config):
    path = write_config("agent: &a\n  x: *a\n")
    assert problems(path) == [f"{path}: line 1, column 8: expected YAML without recursive aliases, "
                              "found an alias inside its own anchor"]


def test_aliases_within_the_budget_still_work(write_config, tmp_path):
    path = write_config("sources:\n  scrape:\n    targets:\n      - &t {name: app, url: 'http://127.0.0.1:1/metrics'}\n"
                        "      - {<<: *t, name: app2}\n")
    config = load_config(path)
    assert [(t.name, t.url) for t in config.sources.scrape.targets] == [
        ("app", "http://127.0.0.1:1/metrics"), ("app2", "http://127.0.0.1:1/metrics")]


def test_config_check_refuses_an_alias_bomb_in_bounded_time_and_memory(write_config, subprocess_env):
    path = write_config(BOMB)
    probe = ("import resource, subprocess, sys\n"
             "done = subprocess.run(['aiops', 'config', 'check', sys.argv[1]], capture_output=True, text=True, timeout=60)\n"
             "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
             "sys.stderr.write(done.stderr)\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True,
                            env=subprocess_env, timeout=90)
    rc, maxrss_kb = result.stdout.split()
    assert rc == "2"
    assert result.stderr == (f"{path}: line 6, column 4: expected YAML aliases to expand to at most 100000 nodes, "
                             "found more (an alias bomb?)\n")
    assert int(maxrss_kb) < 300 * 1024  # the CLI's own imports; the bomb took 1.3 GB and more
    assert time.monotonic() - started < 30


def test_a_missing_playbook_dir_is_refused_with_its_key_path(write_config, tmp_path):
    path = write_config("remediation:\n  playbook_dir: ./no-such-playbooks\n")
    assert problems(path) == [f"{path}: remediation.playbook_dir: expected a directory of playbooks, "
                              f"found no such directory: {tmp_path / 'no-such-playbooks'}"]
    (tmp_path / "a-file").write_text("")
    path = write_config("remediation:\n  playbook_dir: a-file\n")
    assert problems(path) == [f"{path}: remediation.playbook_dir: expected a directory of playbooks, "
                              f"found a file, not a directory: {tmp_path / 'a-file'}"]
    path = write_config("remediation:\n  rules:\n    - {name: r, playbook: restart.yml}\n")  # default ../playbooks
    assert problems(path) == [f"{path}: remediation.playbook_dir: expected a directory of playbooks, "
                              f"found no such directory: {tmp_path / '..' / 'playbooks'}"]
    (tmp_path / "pb").mkdir()
    assert load_config(write_config("remediation:\n  playbook_dir: pb\n")).remediation.playbook_dir == tmp_path / "pb"
    # Remediation off: nothing will read the directory.
    assert not load_config(write_config("remediation:\n  enabled: false\n  playbook_dir: nope\n")).remediation.enabled


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown key, with the keys that are allowed there
        ("agent:\n  intervall: 10s\n",
         "agent.intervall: unknown key; expected one of: interval, log_level, shard, stale_after, state_dir, stop_timeout, unhealthy_after"),
        # wrong type
        ("http:\n  port: eighty\n", "http.port: expected an integer, found 'eighty'"),
        # out of range
        ("http:\n  port: 70000\n", "http.port: expected a number <= 65535, found 70000"),
        # bad duration
        ("agent:\n  interval: soon\n", "agent.interval: expected a duration such as 30s, 5m, 2h or 7d, found 'soon'"),
        # duration that is not positive
        ("agent:\n  interval: 0s\n", "agent.interval: expected a number > 0, found 0.0"),
        # not one of the allowed values
        ("agent:\n  log_level: loud\n",
         "agent.log_level: expected 'debug', 'info', 'warning' or 'error', found 'loud'"),
        # a section that is not a mapping
        ("http: yes\n", "http: expected a mapping, found true"),
        # a validator's own message
        ("agent:\n  shard: 3/2\n", "agent.shard: expected a shard as i/n with 0 <= i < n, found '3/2'"),
        # wrong type for a boolean
        ("http:\n  enabled: maybe\n", "http.enabled: expected true or false, found 'maybe'"),
        ("remediation:\n  workers: -1\n", "remediation.workers: expected a number >= 0, found -1"),
        ("remediation:\n  workers: 17\n", "remediation.workers: expected a number <= 16, found 17"),
    ],
)
def test_bad_values_name_file_key_and_expectation(write_config, text, expected):
    path = write_config(text)
    assert problems(path) == [f"{path}: {expected}"]


def test_top_level_must_be_a_mapping(write_config):
    path = write_config("- a\n- b\n")
    assert problems(path) == [f"{path}: expected a mapping of settings at the top level, found a list"]


def test_yaml_syntax_error_names_its_line(write_config):
    path = write_config("agent:\n  interval: 10s\n http:\n  port: 1\n")
    [message] = problems(path)
    assert message.startswith(f"{path}: line 3, column 2: expected valid YAML, found a syntax error (")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert problems(path) == [f"{path}: expected a readable config file, found no such file or directory"]


def test_unset_environment_variable(write_config, monkeypatch):
    monkeypatch.delenv("AIOPS_TEST_TOKEN", raising=False)
    path = write_config("http:\n  token: ${AIOPS_TEST_TOKEN}\n")
    assert problems(path) == [f"{path}: http.token: expected environment variable AIOPS_TEST_TOKEN to be set, found it unset"]


def test_environment_variable_and_default(write_config, monkeypatch):
    monkeypatch.setenv("AIOPS_TEST_TOKEN", "s3cret-token")
    config = load_config(write_config("http:\n  token: ${AIOPS_TEST_TOKEN}\n  public_url: ${AIOPS_UNSET_URL:-http://x:1}\n"))
    assert config.http.token.get_secret_value() == "s3cret-token"
    assert config.http.public_url == "http://x:1"


def test_secret_file_with_loose_mode_is_refused(write_config, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("abcd1234\n")
    os.chmod(secret, 0o644)
    path = write_config(f"http:\n  token_file: {secret}\n")
    assert problems(path) == [
        f"{path}: http.token_file: expected a secret file only its owner can read (mode 0600), found mode 0644 on {secret}"]


def test_secret_file_with_0600_is_read(write_config, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("abcd1234\n")
    os.chmod(secret, 0o600)
    config = load_config(write_config(f"http:\n  token_file: {secret}\n"))
    assert config.http.token.get_secret_value() == "abcd1234"


def test_secret_file_missing(write_config, tmp_path):
    secret = tmp_path / "absent"
    path = write_config(f"http:\n  token_file: {secret}\n")
    assert problems(path) == [f"{path}: http.token_file: expected a readable secret file, found no such file or directory at {secret}"]


def test_secret_and_secret_file_together(write_config, tmp_path):
    path = write_config(f"http:\n  token: abc\n  token_file: {tmp_path}/t\n")
    assert problems(path) == [f"{path}: http.token_file: expected only one of token and token_file, found both"]


def test_every_problem_is_reported_not_just_the_first(write_config):
    path = write_config("agent:\n  interval: soon\n  shard: x\nhttp:\n  port: -1\n  colour: blue\n")
    assert problems(path) == [
        f"{path}: agent.interval: expected a duration such as 30s, 5m, 2h or 7d, found 'soon'",
        f"{path}: agent.shard: expected a shard as i/n with 0 <= i < n, found 'x'",
        f"{path}: http.port: expected a number >= 0, found -1",
        f"{path}: http.colour: unknown key; expected one of: allowed_hosts, body_timeout, enabled, header_timeout, "
        "listen, max_body, max_connections, max_webhook_body, port, public_url, token",
    ]


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    config = parse_config("agent:\n  state_dir: state\n", name="x.yaml", base_dir=tmp_path)
    assert config.agent.state_dir == tmp_path / "state"


def test_config_check_cli_exit_codes(write_config, subprocess_env):
    good = write_config("agent:\n  interval: 30s\n", "good.yaml")
    bad = write_config("agent:\n  interval: soon\n", "bad.yaml")
    ok = subprocess.run(["aiops", "config", "check", str(good)], capture_output=True, text=True, env=subprocess_env)
    assert ok.returncode == 0 and ok.stdout == f"{good}: ok\n"
    failed = subprocess.run(["aiops", "config", "check", str(bad)], capture_output=True, text=True, env=subprocess_env)
    assert failed.returncode == 2
    assert failed.stderr == f"{bad}: agent.interval: expected a duration such as 30s, 5m, 2h or 7d, found 'soon'\n"


def test_shard_flag_overrides_the_config_and_is_checked(make_config):
    from agent.config import with_shard

    config = make_config("")
    assert with_shard(config, "2/4").agent.shard_index == (2, 4)
    assert with_shard(config, None) is config
    with pytest.raises(ConfigError) as info:
        with_shard(config, "4/4")
    assert str(info.value) == "--shard: expected a shard as i/n with 0 <= i < n, found '4/4'"


def test_key_path_leaves_out_the_tag_of_a_tagged_union(write_config):
    path = write_config("notify:\n  channels:\n    mail:\n      type: email\n      host: smtp.example\n      to: 5\n")
    assert f"{path}: notify.channels.mail.to: expected a list, found 5" in problems(path)


def test_config_check_never_prints_a_password_inside_a_url(write_config):
    from click.testing import CliRunner

    from agent.cli import cli

    bad = write_config("sources:\n  prometheus:\n    url: 'ftp://ops:hunter2-pw@prom.example/'\n"
                       "    timeout: 'soon: https://ops:other-pw@x/'\n", name="bad.yaml")
    result = CliRunner().invoke(cli, ["config", "check", str(bad)])
    assert result.exit_code == 2
    assert "hunter2-pw" not in result.output and "other-pw" not in result.output
    assert "ops:***@prom.example" in result.output


def test_config_check_never_prints_a_secret_written_as_a_number(write_config):
    from click.testing import CliRunner

    from agent.cli import cli

    bad = write_config("http:\n  token: 98765432109876\nstore:\n  password: 55555555.5\n"
                       "notify:\n  channels:\n    pager:\n      type: pagerduty\n      routing_key: 1234567890123\n",
                       name="bad.yaml")
    result = CliRunner().invoke(cli, ["config", "check", str(bad)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"{bad}: http.token: expected a string, found an integer (a secret: its value is not shown)",
        f"{bad}: notify.channels.pager.routing_key: expected a string, found an integer (a secret: its value is not "
        "shown)",
        f"{bad}: store.password: expected a string, found a number (a secret: its value is not shown)"]
