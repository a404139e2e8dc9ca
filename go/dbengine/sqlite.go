package dbengine

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	// Registers the pure-Go "sqlite" database/sql driver (no cgo).
	_ "modernc.org/sqlite"

	dbv1 "github.com/connect-plugin/connect-plugin/go/gen/example/dbengine/v1"
)

// SQLite is the SQLite dialect (modernc.org/sqlite), for sqlite:/path URIs.
type SQLite struct{}

func (SQLite) Name() string        { return "sqlite" }
func (SQLite) AltersColumns() bool { return false }

func (SQLite) Open(uri string) (*sql.DB, error) {
	path, ok := strings.CutPrefix(uri, "sqlite:")
	if !ok || path == "" {
		return nil, fmt.Errorf("this engine serves sqlite:/path/to/file.db URIs; got %q", redact(uri))
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return nil, err
	}
	// One writer at a time: SQLite locks the whole file.
	db.SetMaxOpenConns(1)
	return db, nil
}

func (SQLite) Version(ctx context.Context, db *sql.DB) (string, error) {
	var v string
	err := db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v)
	return v, err
}

func (SQLite) NativeType(t string) string { return strings.ToUpper(t) }

func (SQLite) Describe(ctx context.Context, db *sql.DB, tables []string) ([]*dbv1.Table, error) {
	names := tables
	if len(names) == 0 {
		rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return nil, err
			}
			names = append(names, n)
		}
		rows.Close()
	}
	var out []*dbv1.Table
	for _, name := range names {
		rows, err := db.QueryContext(ctx, "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?) ORDER BY cid", name)
		if err != nil {
			return nil, err
		}
		t := &dbv1.Table{Name: name}
		for rows.Next() {
			var col, typ string
			var notNull, pk int
			if err := rows.Scan(&col, &typ, &notNull, &pk); err != nil {
				rows.Close()
				return nil, err
			}
			t.Columns = append(t.Columns, &dbv1.Column{Name: col, Type: strings.ToLower(typ), Nullable: notNull == 0 && pk == 0, PrimaryKey: pk > 0})
		}
		rows.Close()
		if len(t.Columns) > 0 {
			out = append(out, t)
		}
	}
	return out, nil
}
