"""MySQL to PostgreSQL/SQLite conversion: the same line-oriented rules as the
Go plugin (go/cmd/dialect-go/convert.go), for CREATE TABLE statements written
one column or key per line, as mysqldump writes them. Not a SQL parser."""

import re

RE_CREATE = re.compile(r"^CREATE TABLE (?:IF NOT EXISTS )?`?(\w+)`? \($", re.I)
RE_COLUMN = re.compile(r"^`(\w+)` (.+?),?$")
RE_TYPE = re.compile(r"^(\w+)(\([^)]*\))?( UNSIGNED)?(.*)$", re.I)
RE_KEY = re.compile(r"^(?:KEY|INDEX) `(\w+)` \((.+)\),?$", re.I)
RE_UNIQUE = re.compile(r"^UNIQUE (?:KEY|INDEX) `(\w+)` \((.+)\),?$", re.I)
RE_PRIMARY = re.compile(r"^PRIMARY KEY \((.+)\),?$", re.I)
RE_COMMENT = re.compile(r" COMMENT '(?:[^']|'')*'", re.I)
RE_ON_UPDATE = re.compile(r" ON UPDATE CURRENT_TIMESTAMP", re.I)
RE_AUTO_INC = re.compile(r" AUTO_INCREMENT", re.I)
RE_DEFAULT_NUM = re.compile(r" DEFAULT ([01])\b", re.I)
RE_LIMIT = re.compile(r"\bLIMIT (\d+)\s*,\s*(\d+)", re.I)
TARGETS = ("postgresql", "sqlite")


class ConversionError(ValueError):
    pass


def quote_idents(s):
    return s.replace("`", '"')


def split_statements(ddl):
    stmts, cur = [], []
    for line in ddl.split("\n"):
        t = line.strip()
        if t == "" or t.startswith("--"):
            continue
        cur.append(t)
        if t.endswith(";"):
            stmts.append("\n".join(cur)[:-1])
            cur = []
    if cur:
        stmts.append("\n".join(cur))
    return stmts


def check_target(target):
    if target not in TARGETS:
        raise ConversionError(f'unsupported target dialect "{target}" (supported: postgresql, sqlite)')


def convert_column(table, name, spec, target):
    warnings = []
    where = f"{table}.{name}"
    spec = RE_COMMENT.sub("", spec)
    if RE_ON_UPDATE.search(spec):
        spec = RE_ON_UPDATE.sub("", spec)
        warnings.append(f"{where}: ON UPDATE CURRENT_TIMESTAMP dropped (use a trigger)")
    auto = RE_AUTO_INC.search(spec) is not None
    spec = RE_AUTO_INC.sub("", spec)
    m = RE_TYPE.match(spec)
    base, args, unsigned, rest = m.group(1).upper(), m.group(2) or "", m.group(3) or "", m.group(4)
    if unsigned:
        warnings.append(f"{where}: UNSIGNED dropped")
    check = ""
    if base == "TINYINT" and args == "(1)":
        typ = "BOOLEAN"
        rest = RE_DEFAULT_NUM.sub(lambda d: " DEFAULT TRUE" if d.group(1) == "1" else " DEFAULT FALSE", rest)
    elif base in ("TINYINT", "SMALLINT"):
        typ = "SMALLINT"
    elif base in ("INT", "INTEGER", "MEDIUMINT"):
        typ = "INTEGER"
    elif base == "BIGINT":
        typ = "BIGINT"
    elif base in ("VARCHAR", "CHAR"):
        typ = base + args
    elif base.endswith("TEXT"):
        typ = "TEXT"
    elif base in ("DATETIME", "TIMESTAMP"):
        typ = "TIMESTAMP"
    elif base == "DATE":
        typ = "DATE"
    elif base in ("DECIMAL", "NUMERIC"):
        typ = "NUMERIC" + args
    elif base == "DOUBLE":
        typ = "DOUBLE PRECISION"
    elif base == "FLOAT":
        typ = "REAL"
    elif base == "JSON":
        typ = {"postgresql": "JSONB", "sqlite": "TEXT"}[target]
    elif base == "ENUM":
        typ = "TEXT"
        check = f' CHECK ("{name}" IN {args})'
        warnings.append(f"{where}: ENUM became TEXT with a CHECK constraint")
    else:
        typ = base + args
        warnings.append(f"{where}: type {base} passed through unchanged")
    if auto:
        if target == "sqlite":
            return f'"{name}" INTEGER PRIMARY KEY AUTOINCREMENT', True, warnings
        typ = {"BIGINT": "BIGSERIAL", "SMALLINT": "SMALLSERIAL"}.get(typ, "SERIAL")
        rest = rest.replace(" NOT NULL", "", 1)
    return f'"{name}" {typ}{rest}{check}', auto, warnings


def convert_schema(ddl, target):
    check_target(target)
    out, warnings = [], []
    for stmt in split_statements(ddl):
        lines = stmt.split("\n")
        m = RE_CREATE.match(lines[0].strip())
        if not m:
            raise ConversionError(f"only CREATE TABLE statements are supported; got: {lines[0]}")
        table = m.group(1)
        body, indexes, auto_pk = [], [], ""
        for raw in lines[1:]:
            line = raw.strip()
            if line.startswith(")"):
                options = line[1:].strip()
                if options:
                    warnings.append(f"{table}: table options dropped ({options})")
                break
            c = RE_COLUMN.match(line)
            if c:
                definition, auto, w = convert_column(table, c.group(1), c.group(2), target)
                warnings.extend(w)
                if auto:
                    auto_pk = c.group(1)
                body.append(definition)
                continue
            k = RE_UNIQUE.match(line)
            if k:
                body.append(f'CONSTRAINT "{k.group(1)}" UNIQUE ({quote_idents(k.group(2))})')
                continue
            k = RE_KEY.match(line)
            if k:
                indexes.append(f'CREATE INDEX "{k.group(1)}" ON "{table}" ({quote_idents(k.group(2))});')
                continue
            k = RE_PRIMARY.match(line)
            if k:
                if target == "sqlite" and auto_pk and quote_idents(k.group(1)) == f'"{auto_pk}"':
                    continue
                body.append(f"PRIMARY KEY ({quote_idents(k.group(1))})")
                continue
            if line.upper().startswith("CONSTRAINT "):
                body.append(quote_idents(line).removesuffix(","))
                continue
            raise ConversionError(f"{table}: unsupported line: {line}")
        out.append(f'CREATE TABLE "{table}" (\n  ' + ",\n  ".join(body) + "\n);")
        out.extend(indexes)
    return "\n".join(out) + "\n", warnings


def translate_query(query, target):
    check_target(target)
    q = query.replace("`", '"')
    q = RE_LIMIT.sub(r"LIMIT \2 OFFSET \1", q)
    q = re.sub(r"\bIFNULL\(", "COALESCE(", q, flags=re.I)
    q = re.sub(r"\bNOW\(\)", "CURRENT_TIMESTAMP", q, flags=re.I)
    return q, []
