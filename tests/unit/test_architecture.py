"""The package's shape holds: small modules, and imports that run one way (no cycle).

Read from the source with `ast`, so the check covers imports inside functions and under
`if TYPE_CHECKING:` too.
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "ptor_harness"
MAX_LINES = 400


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def all_imports(tree: ast.AST):
    """Every import node, those under `if TYPE_CHECKING:` included: a cycle that only the
    type checker follows is still two modules that each need the other to be read."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        for node in all_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = here[:len(here) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                targets = [module] + [f"{module}.{a.name}" for a in node.names]
            for target in targets:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):  # a module runs its packages first
                    prefix = ".".join(parts[:i])
                    # its own packages are already running when a module runs
                    if prefix in mods and prefix != name and (
                            not name.startswith(prefix + ".") or prefix == target):
                        edges[name].add(prefix)
    return edges


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_lower_layers_never_import_the_upper_ones():
    """cli -> drill -> processes -> ledger / db -> ops: the drill's processes, the ledger,
    verification and outputs never import the command line or the coordinator."""
    edges = graph()
    upper = {"ptor_harness.cli", "ptor_harness.drill.coordinator", "ptor_harness.drill.later"}
    lower = [name for name in edges if name.startswith((
        "ptor_harness.ledger", "ptor_harness.verify", "ptor_harness.outputs",
        "ptor_harness.config", "ptor_harness.ops", "ptor_harness.db"))]
    assert {name: sorted(edges[name] & upper) for name in lower if edges[name] & upper} == {}


def test_the_design_notes_name_the_home_of_every_module():
    """docs/design.md's table of homes matches the tree: every module is named there, by
    its path or, in a folder's row (`ledger/`, `lab/`, `campaign/`), by its file name."""
    notes = (PACKAGE.parent / "docs" / "design.md").read_text()
    table = notes[notes.index("### Where each concept lives"):notes.index("## Metrics")]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    missing = []
    for path in modules().values():
        relative = path.relative_to(PACKAGE).as_posix()
        if path.name == "__init__.py" or f"`{relative}`" in table:
            continue
        folder = relative.split("/")[0] + "/"
        if any(f"`{folder}`" in row and (f"`{path.name}`" in row or f"`{path.stem}`" in row)
               for row in rows):
            continue
        missing.append(relative)
    assert missing == []
