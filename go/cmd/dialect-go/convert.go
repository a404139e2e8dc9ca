package main

import (
	"fmt"
	"regexp"
	"strings"
)

// A line-oriented MySQL-to-PostgreSQL/SQLite converter for CREATE TABLE
// statements written one column or key per line (as mysqldump writes them).
// It is not a SQL parser; examples/dialect/python/plugin.py applies the
// same rules, and the tests check that both give the same output.

var (
	reCreate     = regexp.MustCompile("(?i)^CREATE TABLE (?:IF NOT EXISTS )?`?(\\w+)`? \\($")
	reColumn     = regexp.MustCompile("^`(\\w+)` (.+?),?$")
	reType       = regexp.MustCompile(`(?i)^(\w+)(\([^)]*\))?( UNSIGNED)?(.*)$`)
	reKey        = regexp.MustCompile("(?i)^(?:KEY|INDEX) `(\\w+)` \\((.+)\\),?$")
	reUnique     = regexp.MustCompile("(?i)^UNIQUE (?:KEY|INDEX) `(\\w+)` \\((.+)\\),?$")
	rePrimary    = regexp.MustCompile(`(?i)^PRIMARY KEY \((.+)\),?$`)
	reComment    = regexp.MustCompile(`(?i) COMMENT '(?:[^']|'')*'`)
	reOnUpdate   = regexp.MustCompile(`(?i) ON UPDATE CURRENT_TIMESTAMP`)
	reAutoInc    = regexp.MustCompile(`(?i) AUTO_INCREMENT`)
	reDefaultNum = regexp.MustCompile(`(?i) DEFAULT ([01])\b`)
	reLimit      = regexp.MustCompile(`(?i)\bLIMIT (\d+)\s*,\s*(\d+)`)
)

func convertSchema(ddl, target string) (string, []string, error) {
	if target != "postgresql" && target != "sqlite" {
		return "", nil, fmt.Errorf("unsupported target dialect %q (supported: postgresql, sqlite)", target)
	}
	var out, warnings []string
	for _, stmt := range splitStatements(ddl) {
		lines := strings.Split(stmt, "\n")
		m := reCreate.FindStringSubmatch(strings.TrimSpace(lines[0]))
		if m == nil {
			return "", nil, fmt.Errorf("only CREATE TABLE statements are supported; got: %s", firstLine(stmt))
		}
		table := m[1]
		var body, indexes []string
		autoPK := ""
		for _, raw := range lines[1:] {
			line := strings.TrimSpace(raw)
			if strings.HasPrefix(line, ")") {
				if strings.TrimSpace(strings.TrimPrefix(line, ")")) != "" {
					warnings = append(warnings, fmt.Sprintf("%s: table options dropped (%s)", table, strings.TrimSpace(strings.TrimPrefix(line, ")"))))
				}
				break
			}
			if c := reColumn.FindStringSubmatch(line); c != nil {
				def, auto, w := convertColumn(table, c[1], c[2], target)
				warnings = append(warnings, w...)
				if auto {
					autoPK = c[1]
				}
				body = append(body, def)
				continue
			}
			if k := reUnique.FindStringSubmatch(line); k != nil {
				body = append(body, fmt.Sprintf(`CONSTRAINT "%s" UNIQUE (%s)`, k[1], quoteIdents(k[2])))
				continue
			}
			if k := reKey.FindStringSubmatch(line); k != nil {
				indexes = append(indexes, fmt.Sprintf(`CREATE INDEX "%s" ON "%s" (%s);`, k[1], table, quoteIdents(k[2])))
				continue
			}
			if k := rePrimary.FindStringSubmatch(line); k != nil {
				if target == "sqlite" && autoPK != "" && quoteIdents(k[1]) == `"`+autoPK+`"` {
					continue // already INTEGER PRIMARY KEY AUTOINCREMENT
				}
				body = append(body, fmt.Sprintf("PRIMARY KEY (%s)", quoteIdents(k[1])))
				continue
			}
			if strings.HasPrefix(strings.ToUpper(line), "CONSTRAINT ") {
				body = append(body, strings.TrimSuffix(quoteIdents(line), ","))
				continue
			}
			return "", nil, fmt.Errorf("%s: unsupported line: %s", table, line)
		}
		out = append(out, fmt.Sprintf("CREATE TABLE \"%s\" (\n  %s\n);", table, strings.Join(body, ",\n  ")))
		out = append(out, indexes...)
	}
	return strings.Join(out, "\n") + "\n", warnings, nil
}

func convertColumn(table, name, spec, target string) (string, bool, []string) {
	var warnings []string
	where := table + "." + name
	if reComment.MatchString(spec) {
		spec = reComment.ReplaceAllString(spec, "")
	}
	if reOnUpdate.MatchString(spec) {
		spec = reOnUpdate.ReplaceAllString(spec, "")
		warnings = append(warnings, where+": ON UPDATE CURRENT_TIMESTAMP dropped (use a trigger)")
	}
	auto := reAutoInc.MatchString(spec)
	spec = reAutoInc.ReplaceAllString(spec, "")
	t := reType.FindStringSubmatch(spec)
	base, args, unsigned, rest := strings.ToUpper(t[1]), t[2], t[3], t[4]
	if unsigned != "" {
		warnings = append(warnings, where+": UNSIGNED dropped")
	}
	var typ, check string
	switch {
	case base == "TINYINT" && args == "(1)":
		typ = "BOOLEAN"
		rest = reDefaultNum.ReplaceAllStringFunc(rest, func(d string) string {
			if strings.HasSuffix(d, "1") {
				return " DEFAULT TRUE"
			}
			return " DEFAULT FALSE"
		})
	case base == "TINYINT" || base == "SMALLINT":
		typ = "SMALLINT"
	case base == "INT" || base == "INTEGER" || base == "MEDIUMINT":
		typ = "INTEGER"
	case base == "BIGINT":
		typ = "BIGINT"
	case base == "VARCHAR" || base == "CHAR":
		typ = base + args
	case strings.HasSuffix(base, "TEXT"):
		typ = "TEXT"
	case base == "DATETIME" || base == "TIMESTAMP":
		typ = "TIMESTAMP"
	case base == "DATE":
		typ = "DATE"
	case base == "DECIMAL" || base == "NUMERIC":
		typ = "NUMERIC" + args
	case base == "DOUBLE":
		typ = "DOUBLE PRECISION"
	case base == "FLOAT":
		typ = "REAL"
	case base == "JSON":
		typ = map[string]string{"postgresql": "JSONB", "sqlite": "TEXT"}[target]
	case base == "ENUM":
		typ = "TEXT"
		check = fmt.Sprintf(` CHECK ("%s" IN %s)`, name, args)
		warnings = append(warnings, where+": ENUM became TEXT with a CHECK constraint")
	default:
		typ = base + args
		warnings = append(warnings, where+": type "+base+" passed through unchanged")
	}
	if auto {
		if target == "sqlite" {
			return fmt.Sprintf(`"%s" INTEGER PRIMARY KEY AUTOINCREMENT`, name), true, warnings
		}
		typ = map[string]string{"BIGINT": "BIGSERIAL", "SMALLINT": "SMALLSERIAL"}[typ]
		if typ == "" {
			typ = "SERIAL"
		}
		rest = strings.Replace(rest, " NOT NULL", "", 1)
	}
	return fmt.Sprintf(`"%s" %s%s%s`, name, typ, rest, check), auto, warnings
}

func translateQuery(query, target string) (string, []string, error) {
	if target != "postgresql" && target != "sqlite" {
		return "", nil, fmt.Errorf("unsupported target dialect %q (supported: postgresql, sqlite)", target)
	}
	q := strings.ReplaceAll(query, "`", `"`)
	q = reLimit.ReplaceAllString(q, "LIMIT $2 OFFSET $1")
	q = regexp.MustCompile(`(?i)\bIFNULL\(`).ReplaceAllString(q, "COALESCE(")
	q = regexp.MustCompile(`(?i)\bNOW\(\)`).ReplaceAllString(q, "CURRENT_TIMESTAMP")
	return q, nil, nil
}

func quoteIdents(list string) string { return strings.ReplaceAll(list, "`", `"`) }

func splitStatements(ddl string) []string {
	var stmts []string
	var cur []string
	for _, line := range strings.Split(ddl, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur = append(cur, trimmed)
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.Join(cur, "\n"), ";"))
			cur = nil
		}
	}
	if len(cur) > 0 {
		stmts = append(stmts, strings.Join(cur, "\n"))
	}
	return stmts
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
