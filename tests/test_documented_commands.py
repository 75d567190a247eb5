"""Every command quoted in README.md and results/ names what exists; nothing is executed.

Collected from README.md and results/**/*.md (fenced and indented code blocks, inline code) and
from results/**/*.sh: `nas SUBCOMMAND ...`, `python [-m MODULE | SCRIPT] ...`, `torchrun ... -m
MODULE ...` and `bash SCRIPT`. Checked:

- `nas`: the subcommand is one of `nas.cli.build_parser()`'s, every option is spelled exactly as
  that subcommand's parser has it (no abbreviations), a value of an option with `choices` is one
  of them, and names of spaces, methods, searchers, proxies and `nas bench` producers are
  registered ones;
- `python -m MODULE` / `torchrun -m MODULE`: the module exists (`importlib.util.find_spec`), a
  package has a `__main__`, a module of this repository has a `__main__` block; `-m nas` is
  checked as the `nas` command;
- `python SCRIPT` / `bash SCRIPT`: the file exists; a Python file of this repository (module or
  script) is statically checked to spell each `--option` it is given.

Placeholders are skipped: words with `$`, upper-case names (RUN_DIR, K=V), `...`, `<that run>`.
In Markdown, `[...]` marks an optional part, `a|b` alternatives (each is checked), and an
indented line starting with `[` or `--` continues the synopsis above it. In shell scripts,
`"${ARRAY[@]}"` expands to the array defined in the script (or a script it `source`s),
`${MAP[$key]}` to all of the map's values when they hold options, and `bash -c 'SCRIPT' $0
ARGS...` is read as SCRIPT with "$@" = ARGS (after its `shift N`); comments are not read.
A report may keep, verbatim, the command of a deleted module that made its figures when it also
quotes the command that measures them now (`REMOVED_MODULES`).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND_WORDS = ("nas", "python", "python3", "torchrun", "bash", "sh")

# Modules deleted on purpose whose run a document still records verbatim, as the command that
# made its figures. Accepted only where the same document also quotes the command that measures
# the same thing now (itself checked like any other), and only while the module stays deleted.
REMOVED_MODULES = {
    # nas bench replaced both overhead benchmarks (commit 49c8aef).
    "nas.benchmarks.supernet_overhead": "nas bench --only steps",
    "nas.benchmarks.method_overhead": "nas bench --only methods",
}

# Modules of the environment rather than of the project, which a venv may lack (uv's do: pip).
ENVIRONMENT_TOOLS = {"pip"}


@dataclass(frozen=True)
class Command:
    where: str  # "results/x.md:12"
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {' '.join(self.words)}"


# ---- shell words ---------------------------------------------------------------------------
def _quoted(text: str, i: int) -> tuple[str, int] | None:
    """The contents of the quoted string at text[i] and the index after it; None if unclosed."""
    quote, j, out = text[i], i + 1, []
    while j < len(text):
        ch = text[j]
        if quote == '"' and ch == "\\" and j + 1 < len(text):
            if text[j + 1] == "\n":
                j += 2
                continue
            if text[j + 1] in '"\\$`':
                out.append(text[j + 1])
                j += 2
                continue
        if ch == quote:
            return "".join(out), j + 1
        out.append(ch)
        j += 1
    return None


def split_commands(text: str, markdown: bool = False) -> list[list[str]]:
    """The simple commands of shell text, each as its words with quotes removed.

    Commands end at a newline (not inside `(...)` or `$(...)`, which stay one word) and at
    `&&`, `||`, `;`, `&`, `|`; in Markdown a `|` is a pipe only with spaces around it and
    outside `[...]`, elsewhere it separates alternatives. `#` at a word's start comments out
    the rest of the line. An unclosed quote is an ordinary character (an apostrophe in prose).
    """
    commands: list[list[str]] = []
    words: list[str] = []
    word: str | None = None
    depth = brackets = 0
    i, n = 0, len(text)

    def end_word() -> None:
        nonlocal word
        if word is not None:
            words.append(word)
            word = None

    def end_command() -> None:
        nonlocal words
        end_word()
        if words:
            commands.append(words)
        words = []

    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            if text[i + 1] != "\n":
                word = (word or "") + text[i + 1]
            i += 2
            continue
        if c in "'\"":
            quoted = _quoted(text, i)
            if quoted is not None:
                word = (word or "") + quoted[0]
                i = quoted[1]
                continue
        if depth > 0:
            depth += c == "("
            depth -= c == ")"
            word = (word or "") + c
            i += 1
            continue
        if c in " \t":
            end_word()
        elif c == "\n":
            end_command()
        elif c == "#" and word is None:
            newline = text.find("\n", i)
            i = n if newline == -1 else newline
            continue
        elif text.startswith(("&&", "||"), i):
            end_command()
            i += 2
            continue
        elif c in ";&":
            end_command()
        elif c == "|" and not (markdown and (brackets or word is not None
                                             or text[i + 1:i + 2] not in (" ", "\t"))):
            end_command()
        else:
            if c == "(":
                depth += 1
            elif markdown and c == "[":
                brackets += 1
            elif markdown and c == "]":
                brackets = max(0, brackets - 1)
            word = (word or "") + c
        i += 1
    end_command()
    return commands


_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1([^\n]*)\n.*?\n\2[ \t]*(?=\n|$)", re.S)
_ARRAY = re.compile(r"(?:^|[\s;])(?:declare\s+-[aA]\s+|local\s+)?([A-Za-z_]\w*)=\(")
_SOURCE = re.compile(r"^\s*(?:source|\.)\s+\"?\$\(dirname \"\$0\"\)/([\w.-]+)\"?", re.M)
_ENTRY = re.compile(r"^\[([^\]]*)\]=(.*)$", re.S)


def shell_arrays(text: str, path: Path | None = None) -> dict[str, list[list[str]]]:
    """Arrays a script defines (and those of scripts it sources from its folder): name -> its
    elements, each element as the words it splits into (a map's value may hold several)."""
    arrays: dict[str, list[list[str]]] = {}
    if path is not None:
        for name in _SOURCE.findall(text):
            sourced = path.parent / name
            if sourced.is_file():
                for key, value in shell_arrays(sourced.read_text()).items():
                    arrays.setdefault(key, []).extend(value)
    for match in _ARRAY.finditer(text):
        start = j = match.end()
        depth = 1
        while j < len(text) and depth:
            depth += (text[j] == "(") - (text[j] == ")")
            j += 1
        body = text[start:j - 1]
        elements = arrays.setdefault(match.group(1), [])
        for command in split_commands(body):
            for element in command:
                entry = _ENTRY.match(element)
                elements.append([w for c in split_commands(entry.group(2)) for w in c]
                                if entry else [element])
    return arrays


_EXPANSION = re.compile(r"^\$\{([A-Za-z_]\w*)\[([^\]]*)\]\}$")


def _expand(words: list[str], arrays: dict[str, list[list[str]]]) -> list[str]:
    out: list[str] = []
    for word in words:
        match = _EXPANSION.match(word)
        elements = arrays.get(match.group(1)) if match else None
        if elements is None:
            out.append(word)
        elif match.group(2) in ("@", "*"):
            out.extend(w for element in elements for w in element)
        elif any(w.startswith("-") for element in elements for w in element):
            out.extend(w for element in elements for w in element)  # ${MAP[$key]}: any value
        else:
            out.append(word)  # a value such as ${BUDGET[$name]}: a placeholder
    return out


def _bash_c(words: list[str], arrays) -> list[list[str]]:
    """The commands of `... bash -c SCRIPT $0 ARGS...`, with "$@" = ARGS after SCRIPT's shift."""
    for k in range(len(words) - 2):
        if words[k] in ("bash", "sh") and words[k + 1] == "-c":
            script, args = words[k + 2], words[k + 3:]
            shift = re.search(r"\bshift(?:\s+(\d+))?", script)
            positional = args[1:][int(shift.group(1) or 1) if shift else 0:]
            inner = []
            for command in split_commands(_HEREDOC.sub(r"\3", script)):
                command = _expand(command, arrays)
                inner.append([w for word in command
                              for w in (positional if word == "$@" else [word])])
            return [c for command in inner for c in [command, *_bash_c(command, arrays)]]
    return []


def _start(words: list[str], anywhere: bool) -> int | None:
    """Index of the word that starts a checked command: after `VAR=value` prefixes (and, in a
    script, after a wrapper such as `job NAME ...` or `flock FILE`), else None."""
    for k, word in enumerate(words):
        if word in COMMAND_WORDS:
            if word in ("bash", "sh") and words[k + 1:k + 2] == ["-c"]:
                return None  # read by _bash_c
            return k
        if not anywhere and not re.match(r"^[A-Za-z_]\w*=", word):
            return None
    return None


def _commands(where: str, text: str, markdown: bool, arrays) -> list[Command]:
    found = []
    for words in split_commands(text, markdown):
        words = _expand(words, arrays)
        for command in [words, *_bash_c(words, arrays)]:
            k = _start(command, anywhere=not markdown)
            if k is not None:
                found.append(Command(where, tuple(command[k:])))
    return found


# ---- Markdown ------------------------------------------------------------------------------
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w-]*)")
_LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s")
_SHELL_FENCES = ("", "bash", "sh", "shell", "console", "text")


def markdown_snippets(text: str) -> list[tuple[int, str]]:
    """(line, shell text) of each code line (fenced blocks of shell, indented blocks; a
    backslash or a synopsis continuation joins lines) and each inline code span."""
    lines = text.split("\n")
    snippets: list[tuple[int, str]] = []
    prose = list(lines)  # what inline spans are read from: code blocks blanked
    fence: str | None = None
    shell_fence = in_list = False
    previous_blank, previous_code = True, False
    for number, line in enumerate(lines, 1):
        opening = _FENCE.match(line)
        if fence is not None:
            prose[number - 1] = ""
            if opening and opening.group(1).startswith(fence[0] * 3) and not opening.group(2):
                fence = None
            elif shell_fence:
                snippets.append((number, line))
            continue
        if opening:
            fence, shell_fence = opening.group(1), opening.group(2).lower() in _SHELL_FENCES
            prose[number - 1] = ""
            continue
        blank = not line.strip()
        indented = line.startswith(("    ", "\t"))
        if _LIST_ITEM.match(line):
            in_list = True
        elif not blank and not indented:
            in_list = False
        is_code = indented and not blank and not in_list and (previous_blank or previous_code)
        if is_code:
            snippets.append((number, line))
            prose[number - 1] = ""
        previous_code = is_code or (previous_code and blank)
        previous_blank = blank
    joined: list[list] = []  # [first line number, last line number, indent, text]
    for number, line in snippets:
        indent = len(line) - len(line.lstrip())
        if joined and number == joined[-1][1] + 1 and (
                joined[-1][3].endswith("\\")
                or (indent > joined[-1][2] and line.strip().startswith(("[", "--")))):
            joined[-1][1] = number
            joined[-1][3] = joined[-1][3].removesuffix("\\") + " " + line.strip()
        else:
            joined.append([number, number, indent, line])
    out = [(first, text) for first, _, _, text in joined]
    body = "\n".join(prose)
    for match in re.finditer(r"(`+)(.+?)\1", body, re.S):
        if "\n\n" not in match.group(2):
            out.append((body.count("\n", 0, match.start()) + 1, " ".join(match.group(2).split())))
    for number, line in snippets:  # a listing in a code block may quote commands in backticks
        out += [(number, match.group(2)) for match in re.finditer(r"(`+)(.+?)\1", line)]
    return out


# ---- collecting ----------------------------------------------------------------------------
def commands_in(path: Path) -> list[Command]:
    text = path.read_text()
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    if path.suffix == ".sh":
        text = _HEREDOC.sub(r"\3", text)
        return _commands(name, text, markdown=False, arrays=shell_arrays(text, path))
    return [c for number, snippet in markdown_snippets(text)
            for c in _commands(f"{name}:{number}", snippet, markdown=True, arrays={})]


def documents() -> list[Path]:
    """README.md and results/**/*.md, *.sh, not walking results/runs/ (run directories)."""
    found = []
    for folder, subfolders, files in os.walk(ROOT / "results"):
        subfolders[:] = sorted(d for d in subfolders
                               if not (Path(folder) == ROOT / "results" and d == "runs"))
        found += [Path(folder) / f for f in files if f.endswith((".md", ".sh"))]
    return [ROOT / "README.md", *sorted(found)]


# ---- checking ------------------------------------------------------------------------------
def _clean(word: str) -> str:
    """A word without the `[`, `]` of an optional part around it (`${A[@]}` is left alone)."""
    return word if "$" in word else word.strip("[]")


def _concrete(value: str) -> bool:
    """A value to check, not a placeholder (RUN_DIR, K, $x, ..., <that run>, key=value)."""
    return re.fullmatch(r"[a-z0-9][a-z0-9_.:-]*", value) is not None


def _is_option(word: str) -> bool:
    return word.startswith("-") and word not in ("-", "--") and not re.fullmatch(r"-[\d.]+", word)


_NAMED = {"space": "space", "method": "method", "searcher": "searcher", "proxy": "proxy",
          "only": "nas bench producer", "scorer": "scorer"}


def _registered_names() -> dict[str, set[str]]:
    """Option dest -> the names it takes, from the registries the CLI reads them from."""
    from nas.bench import PRODUCERS
    from nas.scorers.combined import COMBINATIONS
    from nas.scorers.proxies import PROXIES
    from nas.searchers import SEARCHERS
    from search_spaces import SPACES
    from supernets import METHODS

    proxies = set(PROXIES.names())
    return {"space": set(SPACES.names()), "method": set(METHODS.names()),
            "searcher": set(SEARCHERS.names()), "proxy": proxies,
            "only": {p.name for p in PRODUCERS},
            "scorer": {"supernet", *proxies, *(f"proxy:{p}" for p in proxies), *COMBINATIONS}}


def _is_known(dest: str, value: str, valid: set[str]) -> bool:
    """A name the registry holds; for a scorer, a combination whose every part it holds."""
    if dest != "scorer":
        return value in valid
    aggregation, _, parts = value.partition(":")
    parts = parts if aggregation in ("mean", "log_rank") else value
    return value in valid or all(part in valid for part in parts.split("+"))


_PARSERS: dict[str, argparse.ArgumentParser] = {}


def nas_parsers() -> dict[str, argparse.ArgumentParser]:
    """The `nas` parser under "" and each subcommand's parser under its name (built once)."""
    if not _PARSERS:
        from nas.cli import build_parser

        parser = build_parser()
        _PARSERS[""] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _PARSERS.update(action.choices)
    return _PARSERS


def check_nas(args: list[str]) -> list[str]:
    parsers = nas_parsers()
    args = [_clean(a) for a in args]
    args = [a for a in args if a]
    if not args or args[0] in ("-h", "--help"):
        return []
    name = args[0]
    if name not in parsers:
        if _concrete(name):
            return [f"nas has no subcommand {name!r} (it has "
                    f"{', '.join(sorted(p for p in parsers if p))})"]
        return []
    parser, problems, names = parsers[name], [], None
    options = parser._option_string_actions
    i = 1
    while i < len(args):
        word = args[i]
        i += 1
        if not _is_option(word):
            continue
        for part in word.split("|"):
            flag, eq, value = part.partition("=")
            action = options.get(flag)
            if action is None:
                problems.append(f"nas {name} has no option {flag}")
                continue
            if action.nargs == 0:
                continue
            if not eq:
                if i < len(args) and args[i] in options:
                    problems.append(f"nas {name} {flag} needs a value before {args[i]}")
                    continue
                value = args[i] if i < len(args) else ""
                i += 1
            if action.choices is not None:
                problems += [f"nas {name} {flag} {v!r} is not one of {sorted(action.choices)}"
                             for v in value.split("|") if _concrete(v)
                             and v not in action.choices]
            elif action.dest in _NAMED:
                names = names or _registered_names()
                valid = names[action.dest]
                problems += [f"nas {name} {flag} {v!r}: no such {_NAMED[action.dest]} "
                             f"(registered: {', '.join(sorted(valid))})"
                             for v in re.split(r"[|,]", value) if _concrete(v)
                             and not _is_known(action.dest, v, valid)]
    return problems


def _python_file_options(path: Path, args: list[str], what: str) -> list[str]:
    """A repository Python file must spell each option it is given as a string literal."""
    source = path.read_text()
    flags = {_clean(a).partition("=")[0] for a in args if _is_option(_clean(a))}
    return [f"{what} defines no option {flag} (no {flag!r} literal in {path.name})"
            for flag in sorted(flags) if f'"{flag}"' not in source and f"'{flag}'" not in source]


def _find_spec(module: str):
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def check_module(module: str, args: list[str], document: str = "") -> list[str]:
    if "$" in module or module.isupper() or module in ENVIRONMENT_TOOLS:
        return []
    spec = _find_spec(module)
    if spec is None:
        if module in REMOVED_MODULES and REMOVED_MODULES[module] in document:
            return []
        return [f"no module {module}"]
    if module in REMOVED_MODULES:
        return [f"{module} exists again: drop it from REMOVED_MODULES"]
    if spec.submodule_search_locations is not None:
        spec = _find_spec(f"{module}.__main__")
        if spec is None:
            return [f"package {module} has no __main__: `python -m {module}` cannot run"]
    if module in ("nas", "nas.cli"):
        return check_nas(args)
    origin = Path(spec.origin or "")
    if not origin.is_relative_to(ROOT):
        return []  # pip, pytest, ...: their options are theirs
    if origin.name != "__main__.py" and not re.search(r"__name__\s*==\s*['\"]__main__['\"]",
                                                      origin.read_text()):
        return [f"{module} has no `if __name__ == \"__main__\"` block: running it does nothing"]
    return _python_file_options(origin, args, f"python -m {module}")


def _check_script(path_text: str, args: list[str], runner: str) -> list[str]:
    if "$" in path_text or "<" in path_text or path_text.strip(".") == "":
        return []
    path = ROOT / path_text
    if not path.is_file():
        return [f"{runner} {path_text}: no such file"]
    return _python_file_options(path, args, path_text) if path.suffix == ".py" else []


def check_command(words: list[str] | tuple[str, ...], document: str = "") -> list[str]:
    """What is wrong with one command (an empty list if nothing)."""
    words = [w for w in words if not re.match(r"^\d*>", w)] if words else []
    if not words:
        return []
    head, rest = words[0], list(words[1:])
    if head == "nas":
        return check_nas(rest)
    if head in ("bash", "sh"):
        scripts = [w for w in rest if not w.startswith("-")]
        return _check_script(scripts[0], [], head) if scripts else []
    if head == "torchrun":
        if "-m" in rest:
            k = rest.index("-m")
            return check_module(rest[k + 1], rest[k + 2:], document) if k + 1 < len(rest) else []
        scripts = [k for k, w in enumerate(rest) if w.endswith(".py")]
        return _check_script(rest[scripts[0]], rest[scripts[0] + 1:], head) if scripts else []
    # python [options] (-m MODULE | SCRIPT | -c CODE | -) ARGS
    k = 0
    while k < len(rest):
        word = rest[k]
        if word == "-m":
            return check_module(rest[k + 1], rest[k + 2:], document) if k + 1 < len(rest) else []
        if word in ("-c", "-") or word.startswith("-c"):
            return []
        if word in ("-X", "-W"):
            k += 2
            continue
        if word.startswith("-"):
            k += 1
            continue
        return _check_script(word, rest[k + 1:], head)
    return []


# ---- the tests -----------------------------------------------------------------------------
DOCUMENTS = documents()


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_quoted_command_names_what_exists(path):
    text = path.read_text()
    problems = [f"{command}\n    -> {problem}" for command in commands_in(path)
                for problem in check_command(command.words, text)]
    assert not problems, "\n".join(problems)


def test_the_collector_finds_the_commands_documents_quote():
    """A document whose text quotes a command yields commands: the extraction cannot silently
    miss a whole file, and it reads every kind of quotation."""
    mentions = re.compile(r"(^|[`\s(])(nas (supernet|search|export|train|groundtruth|correlate|"
                          r"bench)|python3? (-m )?\S|bash results/|torchrun )", re.M)
    for path in DOCUMENTS:
        if mentions.search(path.read_text()):
            assert commands_in(path), path
    readme = {c.words for c in commands_in(ROOT / "README.md")}
    assert ("nas", "search", "--space", "darts") in readme  # fenced block, after `&&`
    assert any(w[:4] == ("torchrun", "--nproc-per-node", "2", "-m") for w in readme)
    assert any(w[:2] == ("nas", "correlate") and "--budget" in w for w in readme)  # inline


def _problems(text: str, suffix: str = ".md") -> list[str]:
    """What the checker finds wrong in a document of this text."""
    if suffix == ".sh":
        text = _HEREDOC.sub(r"\3", text)
        commands = _commands("x.sh", text, False, shell_arrays(text))
    else:
        commands = [c for n, s in markdown_snippets(text) for c in _commands(str(n), s, True, {})]
    return [p for c in commands for p in check_command(c.words, text)]


@pytest.mark.parametrize("text, problem", [
    ("Run `nas search --space nb201 --no-such-flag 3`.",
     "nas search has no option --no-such-flag"),
    ("    python -m nas.no_such_module --out x", "no module nas.no_such_module"),
    ("```bash\nnas no-such-command --space nb201\n```",
     "nas has no subcommand 'no-such-command'"),
    ("```bash\nnas search --space nb201 [--searcher tpe|no-such]\n```",
     "nas search --searcher 'no-such': no such searcher"),
    ("```bash\nnas export RUN_DIR --out a.pt2 [--init inherit|no-such]\n```",
     "nas export --init 'no-such' is not one of"),
    ("    nas search --spac nb201", "nas search has no option --spac"),  # argparse would accept
    ("    nas bench --only steps,no-such",
     "nas bench --only 'no-such': no such nas bench producer"),
    ("    nas search --scorer proxy:no-such",
     "nas search --scorer 'proxy:no-such': no such scorer"),
    ("    bash results/no_such_script.sh", "bash results/no_such_script.sh: no such file"),
    ("    python results/main_job/skeleton_steps.py --no-such-flag",
     "results/main_job/skeleton_steps.py defines no option --no-such-flag"),
    ("    python -m nas.reports.ranking_report --no-such-flag x",
     "python -m nas.reports.ranking_report defines no option --no-such-flag"),
    ("    torchrun --nproc-per-node 2 -m nas supernet --space nb201 --no-such-flag",
     "nas supernet has no option --no-such-flag"),
    ("    python -m nas.reports", "package nas.reports has no __main__"),
    ("Run `nas search --oracle --column c`.", "nas search --oracle needs a value before --column"),
    ("```\nnas/x/   listing: `nas no-such-command`\n```",
     "nas has no subcommand 'no-such-command'"),
    # a removed module is accepted only beside the command that replaces it
    ("    python -m nas.benchmarks.supernet_overhead --archs 4",
     "no module nas.benchmarks.supernet_overhead"),
])
def test_the_checker_catches_a_broken_command(text, problem):
    assert any(p.startswith(problem) for p in _problems(text)), _problems(text)


@pytest.mark.parametrize("text", [
    "```bash\nnas export RUN_DIR --out best.pt2 [--arch STR] "
    "[--init inherit|scratch|weight-selection --teacher BIG.pt2]\n"
    "nas search   --space darts [--supernet RUN_DIR] [--searcher tpe|random]\n"
    "             [--workers K | --storage URL --study NAME] [--trials 100]\n```",
    "`nas correlate RUN [RUN ...] --budget --ground-truth CSV --out DIR [--references PROXY_DIR]`",
    "    RUNS=x METHODS=\"spos pada\" bash results/ranking/run_v2.sh   # comment --no-such",
    "    python -m pip install -e . && nas search --space darts --audit 3 --out <that run>",
    "    python -m nas.benchmarks.supernet_overhead --archs 4\n\nnow: `nas bench --only steps`",
])
def test_placeholders_alternatives_and_history_are_not_errors(text):
    assert _problems(text) == []


def test_the_continued_synopsis_line_is_checked():
    text = ("```bash\nnas search --space darts [--trials 100]\n"
            "             [--no-such-flag K]\n```")
    assert _problems(text) == ["nas search has no option --no-such-flag"]


def test_shell_arrays_maps_and_bash_c_reach_the_options():
    script = """
source "$(dirname "$0")/nowhere.sh"
SKELETON=(--space nb201 --width 8
          --no-such-width 3)
declare -A OPTIONS=(
  [a]="--method-opt x=1 --no-such-option 2"
  [b]=""
)
declare -A BUDGET=([a]=508s)
nas train "${SKELETON[@]}" --arch "$ARCH" --time-budget "${BUDGET[$name]}" > log
job "$name" "" nas search ${OPTIONS[$name]} --out x
flock -n lock bash -c 'run=$0 gt=$1; shift
  nas supernet "$@" && nas correlate "$run" --budget' "$run" "$GT" --no-such-argument 1 ||
  echo failed
python - "$DATA" <<'PY'
nas search --no-such-heredoc-flag
PY
"""
    assert sorted(_problems(script, ".sh")) == [
        "nas search has no option --no-such-option",
        "nas supernet has no option --no-such-argument",
        "nas train has no option --no-such-width"]
