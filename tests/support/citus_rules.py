"""Static rules that keep the schema and the adapters' SQL runnable on Citus (docs/citus.md).

No database, no Citus: the migrations are read as text, the adapters' SQL is collected from
their source (the string expressions passed to calls or bound to module names), and
deploy/citus/distribute.sql says how each table is distributed. Each rule returns
violations as readable strings; an empty list is a pass.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "sealmark" / "storage" / "migrations"
DISTRIBUTE_SQL = ROOT / "deploy" / "citus" / "distribute.sql"
# Adapters: the only modules that send SQL (docs/architecture.md).
ADAPTER_GLOBS = (
    "issuer/postgres*.py",
    "aggregator/postgres*.py",
    "verifier/postgres*.py",
    "audit/postgres*.py",
    "sealmark/storage/postgres*.py",
)
# The first migration written for Citus: from here on no trigger, function or recursive CTE
# may be created (0018 drops the earlier ones; the final state is checked on a real server
# by tests/integration/test_citus_schema.py).
FIRST_CITUS_MIGRATION = 18

_ID = r'"?([a-z_][a-z0-9_]*)"?'


@dataclass(frozen=True)
class Layout:
    """How deploy/citus/distribute.sql distributes each table."""

    reference: frozenset[str]
    distributed: dict[str, str]  # table → distribution column
    local: frozenset[str]
    groups: dict[str, str] = field(default_factory=dict)  # table → its co-location group

    def known(self, table: str) -> bool:
        return table in self.reference or table in self.distributed or table in self.local


def parse_layout(text: str) -> Layout:
    """The tables of a distribute.sql: one create_reference_table / create_distributed_table
    call per line, and a ``-- Local (...): a, b.`` comment for coordinator-only tables."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    reference = set(re.findall(r"create_reference_table\('([a-z_0-9]+)'\)", code))
    distributed = dict(
        re.findall(r"create_distributed_table\('([a-z_0-9]+)',\s*'([a-z_0-9]+)'", code)
    )
    groups: dict[str, str] = {}
    for table, rest in re.findall(r"create_distributed_table\('([a-z_0-9]+)',([^)]*)\)", code):
        with_ = re.search(r"colocate_with\s*=>\s*'([a-z_0-9]+)'", rest)
        groups[table] = with_.group(1) if with_ and with_.group(1) != "none" else table
    local: set[str] = set()
    for names in re.findall(r"^-- Local \([^)]*\):\s*([a-z_0-9, ]+)\.?$", text, re.M):
        local.update(n.strip() for n in names.split(",") if n.strip())
    return Layout(frozenset(reference), distributed, frozenset(local), groups)


def layout() -> Layout:
    return parse_layout(DISTRIBUTE_SQL.read_text("utf-8"))


# -- migrations ------------------------------------------------------------------------------


@dataclass
class Schema:
    """What the migrations leave: tables with their keys, foreign keys, and the names of the
    triggers and functions still defined."""

    keys: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    foreign: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    triggers: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    ever_functions: set[str] = field(default_factory=set)


def migration_files() -> list[tuple[int, str, str]]:
    """(version, file name, SQL without comments) of every migration, in order."""
    found = []
    for path in sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        found.append((int(path.name[:4]), path.name, strip_comments(path.read_text("utf-8"))))
    return found


def strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def _statements(sql: str) -> list[str]:
    """Top-level statements (dollar-quoted bodies kept whole)."""
    out, buf, i, quote = [], [], 0, None
    while i < len(sql):
        if sql.startswith("$$", i):
            quote = None if quote else "$$"
            buf.append("$$")
            i += 2
            continue
        ch = sql[i]
        if ch == ";" and quote is None:
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
        i += 1
    if "".join(buf).strip():
        out.append("".join(buf).strip())
    return [s for s in out if s]


def _columns(text: str) -> tuple[str, ...]:
    return tuple(c.strip().strip('"') for c in text.split(",") if c.strip())


def _split_top(body: str) -> list[str]:
    """Comma-separated items of a CREATE TABLE body, commas inside parentheses kept."""
    items, depth, buf = [], 0, []
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            items.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    if "".join(buf).strip():
        items.append("".join(buf).strip())
    return items


def _create_table(schema: Schema, table: str, body: str) -> None:
    keys: dict[str, tuple[str, ...]] = {}
    for item in _split_top(body):
        head = item.split()[0].lower() if item.split() else ""
        table_pk = re.match(r"(?is)(?:constraint\s+\w+\s+)?primary\s+key\s*\(([^)]*)\)", item)
        table_uq = re.match(r"(?is)(?:constraint\s+(\w+)\s+)?unique\s*\(([^)]*)\)", item)
        if table_pk:
            keys[f"{table}_pkey"] = _columns(table_pk.group(1))
        elif table_uq:
            cols = _columns(table_uq.group(2))
            keys[table_uq.group(1) or f"{table}_{'_'.join(cols)}_key"] = cols
        elif head in ("check", "constraint", "foreign", "exclude", "like"):
            continue
        else:
            column = item.split()[0].strip('"')
            if re.search(r"(?i)\bprimary\s+key\b", item):
                keys[f"{table}_pkey"] = (column,)
            elif re.search(r"(?i)\bunique\b", item):
                keys[f"{table}_{column}_key"] = (column,)
            ref = re.search(rf"(?i)\breferences\s+{_ID}\s*(?:\(([^)]*)\))?", item)
            if ref:
                schema.foreign.append(
                    (table, column, ref.group(1), (ref.group(2) or "").strip(), item)
                )
    schema.keys[table] = keys


def parse_migrations(files: list[tuple[int, str, str]] | None = None) -> Schema:
    """Replay the DDL of the migrations that matters to Citus (tables, keys, foreign keys,
    triggers, functions)."""
    schema = Schema()
    for _version, _name, sql in files if files is not None else migration_files():
        for stmt in _statements(sql):
            flat = " ".join(stmt.split())
            create = re.match(
                rf"(?is)create\s+(?:unlogged\s+)?table\s+(?:if\s+not\s+exists\s+)?{_ID}\s*\((.*)\)"
                r"\s*(partition\s+by\s+.*)?$",
                flat,
            )
            partition = re.match(rf"(?is)create\s+table\s+{_ID}\s+partition\s+of\b", flat)
            if partition:
                continue
            if create and not re.match(r"(?is)create\s+(temp|temporary)\b", flat):
                _create_table(schema, create.group(1), create.group(2))
                continue
            drop_table = re.match(rf"(?is)drop\s+table\s+(?:if\s+exists\s+)?{_ID}", flat)
            if drop_table:
                schema.keys.pop(drop_table.group(1), None)
                continue
            unique_index = re.match(
                rf"(?is)create\s+unique\s+index\s+(?:if\s+not\s+exists\s+)?{_ID}\s+on\s+"
                rf"(?:only\s+)?{_ID}\s*(?:using\s+\w+\s*)?\(([^)]*)\)",
                flat,
            )
            if unique_index:
                schema.keys.setdefault(unique_index.group(2), {})[unique_index.group(1)] = _columns(
                    unique_index.group(3)
                )
                continue
            drop_index = re.match(rf"(?is)drop\s+index\s+(?:if\s+exists\s+)?{_ID}", flat)
            if drop_index:
                for keys in schema.keys.values():
                    keys.pop(drop_index.group(1), None)
                continue
            alter = re.match(rf"(?is)alter\s+table\s+(?:only\s+)?{_ID}\s+(.*)$", flat)
            if alter:
                table = alter.group(1)
                keys = schema.keys.setdefault(table, {})
                for action in _split_top(alter.group(2)):
                    dropped = re.match(
                        rf"(?is)drop\s+constraint\s+(?:if\s+exists\s+)?{_ID}", action
                    )
                    pk = re.match(
                        r"(?is)add\s+(?:constraint\s+(\w+)\s+)?primary\s+key\s*\(([^)]*)\)", action
                    )
                    uq = re.match(
                        r"(?is)add\s+(?:constraint\s+(\w+)\s+)?unique\s*\(([^)]*)\)", action
                    )
                    if dropped:
                        keys.pop(dropped.group(1), None)
                    elif pk:
                        keys[pk.group(1) or f"{table}_pkey"] = _columns(pk.group(2))
                    elif uq:
                        cols = _columns(uq.group(2))
                        keys[uq.group(1) or f"{table}_{'_'.join(cols)}_key"] = cols
                continue
            trigger = re.match(
                rf"(?is)create\s+(?:or\s+replace\s+)?(?:constraint\s+)?trigger\s+{_ID}", flat
            )
            if trigger:
                schema.triggers.add(trigger.group(1))
                continue
            drop_trigger = re.match(rf"(?is)drop\s+trigger\s+(?:if\s+exists\s+)?{_ID}", flat)
            if drop_trigger:
                schema.triggers.discard(drop_trigger.group(1))
                continue
            function = re.match(
                rf"(?is)create\s+(?:or\s+replace\s+)?(?:function|procedure)\s+{_ID}", flat
            )
            if function:
                schema.functions.add(function.group(1))
                schema.ever_functions.add(function.group(1))
                continue
            drop_function = re.match(
                rf"(?is)drop\s+(?:function|procedure)\s+(?:if\s+exists\s+)?{_ID}", flat
            )
            if drop_function:
                schema.functions.discard(drop_function.group(1))
    return schema


def migration_violations(
    files: list[tuple[int, str, str]] | None = None, plan: Layout | None = None
) -> list[str]:
    """Every rule over the migrations and distribute.sql."""
    files = migration_files() if files is None else files
    plan = layout() if plan is None else plan
    schema = parse_migrations(files)
    found: list[str] = []
    for version, name, sql in files:
        if version < FIRST_CITUS_MIGRATION:
            continue
        for pattern, what in (
            (r"(?i)\bcreate\s+(or\s+replace\s+)?(constraint\s+)?trigger\b", "a trigger"),
            (r"(?i)\bcreate\s+(or\s+replace\s+)?(function|procedure)\b", "a SQL function"),
            (r"(?i)\bcreate\s+rule\b", "a rule"),
            (r"(?i)\bwith\s+recursive\b", "a recursive CTE"),
        ):
            if re.search(pattern, sql):
                found.append(f"{name}: creates {what}, which Citus cannot run (docs/citus.md)")
    for trigger in sorted(schema.triggers):
        found.append(f"trigger {trigger} is still defined after the migrations")
    for function in sorted(schema.functions):
        found.append(f"function {function} is still defined after the migrations")
    for table in sorted(schema.keys):
        if not plan.known(table):
            found.append(
                f"table {table} is not listed in deploy/citus/distribute.sql"
                " (add its line: reference, by unit or by tenant)"
            )
    for table, column in sorted(plan.distributed.items()):
        for key, cols in sorted(schema.keys.get(table, {}).items()):
            if column not in cols:
                found.append(
                    f"{table}: key {key} ({', '.join(cols)}) lacks the distribution column {column}"
                )
    for table, column, target, target_cols, _text in schema.foreign:
        if table in plan.distributed and target in plan.distributed:
            target_col = target_cols or plan.distributed[target]
            if column != plan.distributed[table] or target_col != plan.distributed[target]:
                found.append(
                    f"{table}.{column} references distributed {target}({target_col}) off the"
                    " distribution columns"
                )
        if table in plan.reference and target in plan.distributed:
            found.append(f"reference table {table} references distributed table {target}")
    return found


# -- adapter SQL -------------------------------------------------------------------------------


def _flatten(node: ast.expr, names: dict[str, str]) -> str | None:
    """The text of a string expression: literals, f-strings (``{}`` for values), ``+``, a
    conditional (its first branch, e.g. ``" FOR UPDATE" if lock else ""``) and module-level
    string names."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            text = _flatten(value, names) if isinstance(value, ast.Constant) else None
            parts.append(text if text is not None else " {} ")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _flatten(node.left, names), _flatten(node.right, names)
        if left is None and right is None:
            return None
        return (left if left is not None else " {} ") + (right if right is not None else " {} ")
    if isinstance(node, ast.IfExp):
        return _flatten(node.body, names)
    if isinstance(node, ast.Name):
        return names.get(node.id)
    return None


_SQL = re.compile(
    r"(?is)\b(select\s.*\bfrom\b|insert\s+into\b|update\s+\w+(\s+\w+)?\s+set\b|delete\s+from\b"
    r"|copy\s+\w+|^\s*select\s)"
)


def adapter_sql(paths: list[Path] | None = None) -> list[tuple[str, str]]:
    """(where, SQL) of every SQL string the adapters build."""
    if paths is None:
        paths = sorted(p for g in ADAPTER_GLOBS for p in ROOT.glob(g))
    found: list[tuple[str, str]] = []
    for path in paths:
        found.extend(sql_in_source(path.read_text("utf-8"), str(path.relative_to(ROOT))))
    return found


def sql_in_source(source: str, where: str) -> list[tuple[str, str]]:
    tree = ast.parse(source)
    names: dict[str, str] = {}
    for node in tree.body:  # module-level names first, in order (one may use another)
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                text = _flatten(node.value, names)
                if text is not None:
                    names[target.id] = text
    found: list[tuple[str, str]] = []
    for name, text in names.items():
        if _SQL.search(text):
            found.append((f"{where}:{name}", text))
    scopes: list[tuple[ast.AST, dict[str, str]]] = [(tree, names)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local = dict(names)  # a function's own string names (e.g. a locking clause)
            for inner in ast.walk(node):
                if isinstance(inner, ast.Assign) and len(inner.targets) == 1:
                    target = inner.targets[0]
                    if isinstance(target, ast.Name):
                        text = _flatten(inner.value, local)
                        if text is not None:
                            local[target.id] = text
            scopes.append((node, local))
    seen: set[int] = set()
    for scope, local in reversed(scopes):  # innermost first: its names win
        for node in ast.walk(scope):
            if isinstance(node, ast.Call) and id(node) not in seen:
                seen.add(id(node))
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    text = _flatten(arg, local)
                    if text is not None and _SQL.search(text) and not isinstance(arg, ast.Name):
                        found.append((f"{where}:{node.lineno}", text))
    return found


_TABLE_REF = re.compile(
    r"(?i)\b(?:from|join|into|update|truncate)\s+(?:only\s+)?([a-z_][a-z0-9_]*)"
)
_NOT_TABLES = {"unnest", "select", "lateral", "stdin", "stdout", "set", "of", "generate_series"}
_LOCK = re.compile(r"(?i)\bfor\s+(update|share|no\s+key\s+update|key\s+share)\b")
_CTE = re.compile(
    r"(?i)(?:with(?:\s+recursive)?|,)\s+(\w+)\s*(?:\([^)]*\))?\s+as\s*(?:not\s+)?(?:materialized\s*)?\("
)
_PARAM = r"(?:%s|%\(\w+\)s|\$\d+(?:::\w+)?)"


def _tables(sql: str, ctes: set[str]) -> set[str]:
    return {
        t.lower()
        for t in _TABLE_REF.findall(sql)
        if t.lower() not in _NOT_TABLES and t.lower() not in ctes and not t.startswith("pg_")
    }


def sql_violations(
    statements: list[tuple[str, str]] | None = None,
    plan: Layout | None = None,
    functions: set[str] | None = None,
) -> list[str]:
    """Every rule over the adapters' SQL."""
    statements = adapter_sql() if statements is None else statements
    plan = layout() if plan is None else plan
    functions = parse_migrations().ever_functions if functions is None else functions
    temp = {
        t.lower()
        for _, sql in statements
        for t in re.findall(
            r"(?i)create\s+temp(?:orary)?\s+table\s+(?:if\s+not\s+exists\s+)?(\w+)", sql
        )
    }
    temp |= {
        t.lower()
        for _, sql in statements
        for t in re.findall(r"(?i)\bcopy\s+(\w+)", sql)
        if t.lower().endswith(("_in", "_stage"))
    }
    found: list[str] = []
    for where, sql in statements:
        flat = " ".join(sql.split())
        ctes = {c.lower() for c in _CTE.findall(flat)}
        tables = _tables(flat, ctes)
        if re.search(r"(?i)\bwith\s+recursive\b", flat):
            found.append(f"{where}: a recursive CTE (walk one level per statement instead)")
        for function in sorted(functions):
            if re.search(rf"(?i)\b{function}\s*\(", flat):
                found.append(f"{where}: calls the SQL function {function}")
        for table in sorted(tables):
            if not plan.known(table) and table not in temp:
                found.append(f"{where}: table {table} is not listed in deploy/citus/distribute.sql")
        joined = {plan.groups[t] for t in tables if t in plan.groups}
        if len(joined) > 1 and not re.search(r"(?i)\bmaterialized\b", flat):
            found.append(
                f"{where}: one statement over tables of different co-location groups"
                f" ({', '.join(sorted(joined))}): no join reaches both on Citus (read one"
                " first, or in a MATERIALIZED CTE)"
            )
        if _LOCK.search(flat):
            for table in sorted(t for t in tables if t in plan.distributed):
                column = plan.distributed[table]
                if not re.search(rf"(?i)\b(?:\w+\.)?{column}\s*=\s*{_PARAM}", flat):
                    found.append(
                        f"{where}: FOR UPDATE/SHARE on {table} without {column} = <one value>"
                        " (a lock over several shards; lock by the distribution key)"
                    )
        update = re.match(
            rf"(?is)^\s*update\s+{_ID}(?:\s+(?:as\s+)?\w+)?\s+set\s+(.*?)(?:\bwhere\b|\bfrom\b|\breturning\b|$)",
            flat,
        )
        if update and update.group(1).lower() in plan.distributed:
            column = plan.distributed[update.group(1).lower()]
            if re.search(rf"(?i)(?:^|,)\s*(?:\w+\.)?{column}\s*=", update.group(2)):
                found.append(
                    f"{where}: UPDATE sets {update.group(1)}.{column}, its distribution column"
                    " (delete and insert the row instead)"
                )
        for table, cols in re.findall(
            rf"(?i)\binsert\s+into\s+{_ID}[^;]*?\bon\s+conflict\s*\(([^)]*)\)", flat
        ):
            column = plan.distributed.get(table.lower())
            if column and column not in _columns(cols):
                found.append(f"{where}: ON CONFLICT ({cols}) on {table} lacks {column}")
    return found
