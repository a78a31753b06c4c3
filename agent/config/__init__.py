"""Load and validate the agent's one YAML config file.

``load_config(path)`` returns a frozen ``AgentConfig`` or raises ``ConfigError`` carrying every
problem as ``FILE: key.path: expected …, found …``. Before validation, ``${VAR}`` (or
``${VAR:-default}``) in any string is replaced from the environment, and a key ``X_file``
beside a secret key ``X`` reads the secret from a file that only its owner may read.

A file must hold settings: an empty one (nothing, only comments, ``null``, ``{}``) is refused
rather than read as "all defaults", so a truncated file cannot silently replace a working
config. YAML aliases may expand to at most ``MAX_YAML_NODES`` nodes: the expanded size is
counted on the composed graph (linear in the file) before anything is built, so an alias bomb
fails in milliseconds.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from agent import log
from agent.config.model import AgentConfig
from agent.errors import ConfigError, ConfigProblem

__all__ = ["AgentConfig", "load_config", "parse_config", "with_shard", "SECRET_KEYS"]

SECRET_KEYS = frozenset(
    {"token", "password", "bearer_token", "routing_key", "api_key", "url_secret", "webhook_url"}
)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# A generous config (hundreds of targets and rules) is a few thousand nodes.
MAX_YAML_NODES = 100_000


def load_config(path: str | os.PathLike[str]) -> AgentConfig:
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError.one(name, "", f"expected a readable config file, found {exc.strerror.lower()}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError.one(name, "", f"expected UTF-8 text, found byte 0x{exc.object[exc.start]:02x} "
                                        f"at offset {exc.start}") from exc
    return parse_config(text, name=name, base_dir=path.resolve().parent, empty_ok=False)


def parse_config(text: str, *, name: str = "<config>", base_dir: Path | None = None,
                 empty_ok: bool = True) -> AgentConfig:
    """The config in ``text``; with ``empty_ok`` (text built in code) empty text means all defaults,
    without it (a file) empty text is an error."""
    try:
        data = _load_yaml(text, name)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError.one(name, where, f"expected valid YAML, found a syntax error ({exc.problem})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError.one(name, "", f"expected valid YAML, found {exc}") from exc
    if not empty_ok and (data is None or data == {}):
        found = "nothing (the file is empty or holds only comments)" if data is None else "an empty mapping"
        raise ConfigError.one(name, "", f"expected a mapping of settings at the top level, found {found}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError.one(name, "", f"expected a mapping of settings at the top level, found {_kind(data)}")
    problems: list[ConfigProblem] = []
    data = _expand(data, (), name, problems)
    if problems:
        raise ConfigError(problems)
    try:
        config = AgentConfig.model_validate(data, context={"base_dir": base_dir or Path.cwd()})
    except ValidationError as exc:
        raise ConfigError([_problem(name, err) for err in exc.errors(include_url=False)]) from exc
    problems = _missing_dirs(config, name)
    if problems:
        raise ConfigError(problems)
    return config


def _load_yaml(text: str, name: str) -> Any:
    """``yaml.safe_load`` that refuses aliases expanding past MAX_YAML_NODES nodes."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, name)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, name: str) -> None:
    # An alias is the same node object met again: each node's expanded size is computed once,
    # children first, so the walk is linear in the composed graph whatever the aliases multiply.
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_NODES:
                mark = node.start_mark
                raise ConfigError.one(name, f"line {mark.line + 1}, column {mark.column + 1}",
                                      f"expected YAML aliases to expand to at most {MAX_YAML_NODES} nodes, "
                                      "found more (an alias bomb?)")
            continue
        if key in sizes:
            continue
        if key in on_path:
            mark = node.start_mark
            raise ConfigError.one(name, f"line {mark.line + 1}, column {mark.column + 1}",
                                  "expected YAML without recursive aliases, found an alias inside its own anchor")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _missing_dirs(config: AgentConfig, name: str) -> list[ConfigProblem]:
    """Directories the config names that must exist: ``remediation.playbook_dir`` when it is set,
    or when rules would run playbooks from it (else their incidents would never be remediated)."""
    remediation = config.remediation
    if not remediation.enabled or not ("playbook_dir" in remediation.model_fields_set or remediation.rules):
        return []
    path = remediation.playbook_dir
    if path.is_dir():
        return []
    found = "a file, not a directory" if path.exists() else "no such directory"
    return [ConfigProblem(name, "remediation.playbook_dir",
                          f"expected a directory of playbooks, found {found}: {path}")]


def with_shard(config: AgentConfig, shard: str | None) -> AgentConfig:
    """The config with ``agent.shard`` replaced by a command-line ``--shard i/n``."""
    if not shard:
        return config
    try:
        agent = type(config.agent).model_validate({**dict(config.agent), "shard": shard})
    except ValidationError as exc:
        raise ConfigError([_problem("--shard", {**err, "loc": ()}) for err in exc.errors(include_url=False)]) from exc
    return config.model_copy(update={"agent": agent})


# -- before validation: environment variables and secret files ------------------------------

def _expand(node: Any, at: tuple[Any, ...], name: str, problems: list[ConfigProblem]) -> Any:
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            here = (*at, key)
            if isinstance(key, str) and key.endswith("_file") and key[: -len("_file")] in SECRET_KEYS:
                base = key[: -len("_file")]
                if base in node:
                    problems.append(ConfigProblem(name, _dotted(here), f"expected only one of {base} and {key}, found both"))
                    continue
                secret = _read_secret_file(_expand(value, here, name, problems), here, name, problems)
                if secret is not None:
                    out[base] = secret
                continue
            out[key] = _expand(value, here, name, problems)
        return out
    if isinstance(node, list):
        return [_expand(v, (*at, i), name, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        def substitute(match: re.Match[str]) -> str:
            var, default = match.group(1), match.group(2)
            value = os.environ.get(var)
            if value is None:
                if default is not None:
                    return default
                problems.append(ConfigProblem(
                    name, _dotted(at), f"expected environment variable {var} to be set, found it unset"))
                return ""
            return value
        return _ENV.sub(substitute, node)
    return node


def _read_secret_file(value: Any, at: tuple[Any, ...], name: str, problems: list[ConfigProblem]) -> str | None:
    if not isinstance(value, str) or not value:
        problems.append(ConfigProblem(name, _dotted(at), f"expected a file path, found {value!r}"))
        return None
    path = Path(value).expanduser()
    try:
        info = path.stat()
    except OSError as exc:
        problems.append(ConfigProblem(name, _dotted(at), f"expected a readable secret file, found {exc.strerror.lower()} at {path}"))
        return None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        problems.append(ConfigProblem(
            name, _dotted(at), f"expected a secret file only its owner can read (mode 0600), found mode {mode:04o} on {path}"))
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(ConfigProblem(name, _dotted(at), f"expected a readable secret file, found {exc.strerror.lower()} at {path}"))
        return None


# -- after validation: turning pydantic's errors into key paths and plain words ---------------

def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that owns the last key of ``loc``, for listing the keys it allows."""
    model: Any = AgentConfig
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _unwrap_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _key_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The keys a user wrote: pydantic also puts validator names and the tag of a tagged union
    (``notify.channels.mail.email.to``) into error locations."""
    out: list[Any] = []
    node: Any = AgentConfig
    for part in loc:
        if isinstance(part, str) and (part.startswith("function-") or part in {"literal", "str", "int", "float"}):
            continue
        node = _unwrap(node)
        members = [m for m in get_args(node) if isinstance(m, type) and issubclass(m, BaseModel)] \
            if get_origin(node) in (Union, UnionType) else []
        tagged = next((m for m in members if any(part in get_args(f.annotation) for f in m.model_fields.values()
                                                 if get_origin(f.annotation) is Literal)), None)
        if tagged is not None:
            node = tagged  # the tag names the union member: not a key the user wrote
            continue
        out.append(part)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part) if isinstance(part, str) else None
            node = field.annotation if field is not None else None
        elif get_origin(node) in (list, tuple, set, frozenset, dict):
            node = (get_args(node) or (None,))[-1]
        else:
            node = None
    return tuple(out)


def _unwrap(node: Any) -> Any:
    """Annotated[X, ...] -> X, Optional[X] -> X."""
    while True:
        if get_origin(node) is Annotated:
            node = get_args(node)[0]
            continue
        if get_origin(node) in (Union, UnionType):
            args = [a for a in get_args(node) if a is not type(None)]
            if len(args) == 1:
                node = args[0]
                continue
        return node


def _problem(name: str, err: dict[str, Any]) -> ConfigProblem:
    loc = _key_path(tuple(err["loc"]))
    kind = err["type"]
    secret = any(isinstance(part, str) and part in SECRET_KEYS for part in loc[-1:])
    found = _secret_kind(err.get("input")) if secret else _kind(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind == "missing":
        message = "expected a value (this key is required), found nothing"
    elif kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = ", ".join(sorted(model.model_fields)) if model else ""
        message = f"unknown key; expected one of: {allowed}" if allowed else "unknown key"
    elif kind == "value_error":
        message = str(ctx.get("error", err["msg"]))
        if not message.startswith("expected"):
            message = f"expected {message}, found {found}"
    elif kind in {"int_parsing", "int_type", "int_from_float"}:
        message = f"expected an integer, found {found}"
    elif kind in {"float_parsing", "float_type"}:
        message = f"expected a number, found {found}"
    elif kind in {"bool_parsing", "bool_type"}:
        message = f"expected true or false, found {found}"
    elif kind in {"string_type"}:
        message = f"expected a string, found {found}"
    elif kind in {"model_type", "dict_type", "model_attributes_type"}:
        message = f"expected a mapping, found {found}"
    elif kind in {"list_type", "tuple_type", "set_type"}:
        message = f"expected a list, found {found}"
    elif kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        ops = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
        bound = next(iter(ctx.values()), "")
        bound = f"{bound:g}" if isinstance(bound, float) else bound
        message = f"expected a number {ops[kind]} {bound}, found {found}"
    else:
        text = err["msg"]
        text = text[len("Input should be "):] if text.startswith("Input should be ") else text[0].lower() + text[1:]
        message = f"expected {text}, found {found}"
    if secret:
        message = _without(message, err.get("input"))
    return ConfigProblem(name, _dotted(loc), log.scrub_url_credentials(message))


def _secret_kind(value: Any) -> str:
    """What a secret key was given, in words that never show its value: an invalid secret is
    still a secret (a token written unquoted is read as a number)."""
    if value is None or isinstance(value, (bool, dict, list)):
        return _kind(value)
    kind = {int: "an integer", float: "a number", str: "a string"}.get(type(value), "a value")
    return f"{kind} (a secret: its value is not shown)"


def _without(message: str, value: Any) -> str:
    """``message`` with a secret's value (as a validator may have quoted it) replaced by ``***``."""
    if value is None or isinstance(value, (bool, dict, list)) or len(str(value)) < 4:
        return message
    return message.replace(repr(value), "***").replace(str(value), "***")

