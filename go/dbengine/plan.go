// Package dbengine is the DatabaseEngine contract (examples/dbengine) over
// database/sql: one planner, and a Dialect per database. The TypeScript
// built-in engine (examples/dbengine/builtin-engine.ts) follows the same
// rules, so a host gets the same plan from either.
package dbengine

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"connectrpc.com/connect"

	dbv1 "github.com/connect-plugin/connect-plugin/go/gen/example/dbengine/v1"
)

var (
	identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	varchar    = regexp.MustCompile(`^varchar\(([1-9][0-9]{0,4})\)$`)
)

// checkTable validates names and types and returns a normalised copy
// (primary key columns are never nullable).
func checkTable(t *dbv1.Table) (*dbv1.Table, error) {
	if t == nil {
		return nil, invalid("desired table is missing")
	}
	if !identifier.MatchString(t.Name) {
		return nil, invalid(fmt.Sprintf("table name %q must match [a-z_][a-z0-9_]*", t.Name))
	}
	if len(t.Columns) == 0 {
		return nil, invalid(fmt.Sprintf("table %q has no columns", t.Name))
	}
	out := &dbv1.Table{Name: t.Name}
	seen := map[string]bool{}
	for _, c := range t.Columns {
		if !identifier.MatchString(c.Name) {
			return nil, invalid(fmt.Sprintf("column name %q in table %q must match [a-z_][a-z0-9_]*", c.Name, t.Name))
		}
		if seen[c.Name] {
			return nil, invalid(fmt.Sprintf("column %q appears twice in table %q", c.Name, t.Name))
		}
		seen[c.Name] = true
		if !validType(c.Type) {
			return nil, invalid(fmt.Sprintf("column %s.%s has type %q; use one of integer, bigint, text, boolean, timestamp, double, varchar(N)", t.Name, c.Name, c.Type))
		}
		out.Columns = append(out.Columns, &dbv1.Column{Name: c.Name, Type: c.Type, Nullable: c.Nullable && !c.PrimaryKey, PrimaryKey: c.PrimaryKey})
	}
	return out, nil
}

func validType(t string) bool {
	switch t {
	case "integer", "bigint", "text", "boolean", "timestamp", "double":
		return true
	}
	return varchar.MatchString(t)
}

// Plan returns the statements that turn current (nil: no such table) into desired.
func Plan(d Dialect, current, desired *dbv1.Table) ([]string, error) {
	want, err := checkTable(desired)
	if err != nil {
		return nil, err
	}
	q := quote
	if current == nil {
		var defs, pk []string
		for _, c := range want.Columns {
			defs = append(defs, columnDef(d, c))
			if c.PrimaryKey {
				pk = append(pk, q(c.Name))
			}
		}
		if len(pk) > 0 {
			defs = append(defs, "PRIMARY KEY ("+strings.Join(pk, ", ")+")")
		}
		return []string{fmt.Sprintf("CREATE TABLE %s (%s)", q(want.Name), strings.Join(defs, ", "))}, nil
	}
	have := map[string]*dbv1.Column{}
	for _, c := range current.Columns {
		have[c.Name] = c
	}
	wanted := map[string]bool{}
	var out []string
	for _, c := range want.Columns {
		wanted[c.Name] = true
		old, exists := have[c.Name]
		if !exists {
			if c.PrimaryKey {
				return nil, precondition(fmt.Sprintf("%s.%s: changing a table's primary key is not supported", want.Name, c.Name))
			}
			if !c.Nullable {
				return nil, precondition(fmt.Sprintf("%s.%s: a column added to an existing table must be nullable", want.Name, c.Name))
			}
			out = append(out, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s", q(want.Name), columnDef(d, c)))
			continue
		}
		if old.PrimaryKey != c.PrimaryKey {
			return nil, precondition(fmt.Sprintf("%s.%s: changing a table's primary key is not supported", want.Name, c.Name))
		}
		if old.Type != c.Type {
			if !d.AltersColumns() {
				return nil, precondition(fmt.Sprintf("%s.%s: %s cannot change a column's type in place (%s to %s)", want.Name, c.Name, d.Name(), old.Type, c.Type))
			}
			native := d.NativeType(c.Type)
			out = append(out, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s", q(want.Name), q(c.Name), native, q(c.Name), native))
		}
		if old.Nullable != c.Nullable {
			if !d.AltersColumns() {
				return nil, precondition(fmt.Sprintf("%s.%s: %s cannot change a column's nullability in place", want.Name, c.Name, d.Name()))
			}
			change := "SET NOT NULL"
			if c.Nullable {
				change = "DROP NOT NULL"
			}
			out = append(out, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s %s", q(want.Name), q(c.Name), change))
		}
	}
	for _, c := range current.Columns {
		if !wanted[c.Name] {
			if c.PrimaryKey {
				return nil, precondition(fmt.Sprintf("%s.%s: changing a table's primary key is not supported", want.Name, c.Name))
			}
			out = append(out, fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", q(want.Name), q(c.Name)))
		}
	}
	return out, nil
}

func columnDef(d Dialect, c *dbv1.Column) string {
	def := quote(c.Name) + " " + d.NativeType(c.Type)
	if !c.Nullable {
		def += " NOT NULL"
	}
	return def
}

func quote(name string) string { return `"` + name + `"` }

func invalid(msg string) error {
	return connect.NewError(connect.CodeInvalidArgument, errors.New(msg))
}

func precondition(msg string) error {
	return connect.NewError(connect.CodeFailedPrecondition, errors.New(msg))
}
