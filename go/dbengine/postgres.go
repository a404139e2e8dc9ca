package dbengine

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	// Registers the "pgx" database/sql driver.
	_ "github.com/jackc/pgx/v5/stdlib"

	dbv1 "github.com/connect-plugin/connect-plugin/go/gen/example/dbengine/v1"
)

// Postgres is the PostgreSQL dialect (pgx), for postgres:// and postgresql:// URIs.
type Postgres struct{}

func (Postgres) Name() string        { return "postgresql" }
func (Postgres) AltersColumns() bool { return true }

func (Postgres) Open(uri string) (*sql.DB, error) {
	if !strings.HasPrefix(uri, "postgres://") && !strings.HasPrefix(uri, "postgresql://") {
		return nil, fmt.Errorf("this engine serves postgres:// URIs; got %q", redact(uri))
	}
	return sql.Open("pgx", uri)
}

func (Postgres) Version(ctx context.Context, db *sql.DB) (string, error) {
	var v string
	err := db.QueryRowContext(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

func (Postgres) NativeType(t string) string {
	switch t {
	case "double":
		return "double precision"
	}
	return t
}

func (Postgres) Describe(ctx context.Context, db *sql.DB, tables []string) ([]*dbv1.Table, error) {
	rows, err := db.QueryContext(ctx, `
		SELECT c.table_name, c.column_name, c.data_type, c.character_maximum_length, c.is_nullable = 'YES',
		       EXISTS (SELECT 1 FROM information_schema.table_constraints tc
		               JOIN information_schema.key_column_usage k
		                 ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema AND k.table_name = tc.table_name
		               WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema
		                 AND tc.table_name = c.table_name AND k.column_name = c.column_name)
		FROM information_schema.columns c
		WHERE c.table_schema = current_schema() AND (cardinality($1::text[]) = 0 OR c.table_name = ANY($1::text[]))
		ORDER BY c.table_name, c.ordinal_position`, tables)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*dbv1.Table
	for rows.Next() {
		var table, column, dataType string
		var length sql.NullInt64
		var nullable, pk bool
		if err := rows.Scan(&table, &column, &dataType, &length, &nullable, &pk); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Name != table {
			out = append(out, &dbv1.Table{Name: table})
		}
		t := out[len(out)-1]
		t.Columns = append(t.Columns, &dbv1.Column{Name: column, Type: portablePostgres(dataType, length), Nullable: nullable, PrimaryKey: pk})
	}
	return out, rows.Err()
}

func portablePostgres(dataType string, length sql.NullInt64) string {
	switch dataType {
	case "timestamp without time zone":
		return "timestamp"
	case "double precision":
		return "double"
	case "character varying":
		if length.Valid {
			return fmt.Sprintf("varchar(%d)", length.Int64)
		}
		return "text"
	}
	return dataType
}

// redact keeps a URI's password out of error messages.
func redact(uri string) string {
	if at := strings.LastIndex(uri, "@"); at >= 0 {
		if scheme := strings.Index(uri, "://"); scheme >= 0 && scheme < at {
			return uri[:scheme+3] + "…@" + uri[at+1:]
		}
	}
	return uri
}
