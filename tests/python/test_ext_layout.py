"""The extension's layout (docs/architecture.md, "Extension layout"): one file per Python
type owning its spec, module.c the module alone, and no cycle among the files of
src/python: read from the sources, so an upward call added later fails here."""

import pathlib
import re

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "python"

# A definition at file scope that other files can see: not static, an idt_ name, then a
# parameter list or an initializer (functions and the exported type specs).
_DEF = re.compile(r"^(?!static\b)(?!extern\b)[A-Za-z_][\w \t\*]*?\b(idt_\w+)\s*(\(|=)", re.M)
_USE = re.compile(r"\bidt_\w+\b")


def _strip_comments(text):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)


def _sources():
    files = {p.name: _strip_comments(p.read_text()) for p in sorted(SRC.glob("*.c"))}
    assert files, f"no C sources under {SRC}"
    return files


def _graph(files):
    owner = {}
    for name, text in files.items():
        for m in _DEF.finditer(text):
            sym = m.group(1)
            assert sym not in owner, f"{sym} defined in {owner.get(sym)} and {name}"
            owner[sym] = name
    deps = {name: set() for name in files}
    for name, text in files.items():
        for sym in set(_USE.findall(text)):
            other = owner.get(sym)
            if other is not None and other != name:
                deps[name].add(other)
    return owner, deps


def _cycle(deps):
    """A cycle as a list of files, or None (depth-first search)."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(deps[n]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(deps):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a.c": {"b.c"}, "b.c": {"c.c"}, "c.c": {"a.c"}}) == ["a.c", "b.c", "c.c", "a.c"]
    assert _cycle({"a.c": {"b.c"}, "b.c": set()}) is None


def test_no_cycle_between_extension_files():
    owner, deps = _graph(_sources())
    assert owner.get("idt_py_raise") == "errors.c"  # the parser sees definitions
    assert "tableview.c" in deps["module.c"]
    assert _cycle(deps) is None, f"call cycle among src/python files: {' -> '.join(_cycle(deps))}"


def test_module_c_is_called_by_no_other_file():
    _, deps = _graph(_sources())
    callers = sorted(n for n, d in deps.items() if "module.c" in d)
    assert callers == [], f"{callers} call into module.c"


def test_one_type_spec_per_file_and_module_def_only_in_module_c():
    files = _sources()
    specs = {n: re.findall(r"^PyType_Spec (\w+) = \{", t, re.M) for n, t in files.items()}
    for name, found in specs.items():
        assert len(found) <= 1, f"{name} defines several type specs: {found}"
    assert specs["tableview.c"] == ["idt_tableview_spec"]
    assert specs["batchiter.c"] == ["idt_batchiter_spec"]
    assert specs["writer.c"] == ["idt_writer_spec"]
    assert not specs["module.c"]
    defs = sorted(n for n, t in files.items() if re.search(r"\bPyModuleDef \w+ = \{", t))
    assert defs == ["module.c"]


def test_only_errors_c_turns_core_errors_into_exceptions():
    """The one IDT_E* -> exception rule: no other file reads an idt_error's message to raise
    its own exception (idt_py_raise_in adds context instead)."""
    files = _sources()
    assert re.search(r"(\.|->)msg\b", files["errors.c"])  # the check sees the reads it forbids
    readers = sorted(n for n, t in files.items() if n != "errors.c" and re.search(r"(\.|->)msg\b", t))
    assert readers == [], f"{readers} build exceptions from idt_error.msg; use idt_py_raise[_in]"


def test_the_graph_in_architecture_md_is_the_sources_graph():
    doc = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    drawn = {}
    for m in re.finditer(r"^(\w+\.c) .*-> (.*)$", doc, re.M):
        targets = m.group(2).strip()
        drawn[m.group(1)] = set() if targets == "(nothing)" else {t.strip() + ".c" for t in targets.split(",")}
    _, deps = _graph(_sources())
    assert set(drawn) == set(deps) - {"module.c"}, "architecture.md draws other files than src/python has"
    for name, targets in drawn.items():
        assert targets == deps[name], f"{name}: drawn -> {sorted(targets)}, calls {sorted(deps[name])}"
