package dbengine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"sync"

	"connectrpc.com/connect"

	dbv1 "github.com/connect-plugin/connect-plugin/go/gen/example/dbengine/v1"
)

// Dialect is what differs between databases.
type Dialect interface {
	// Name is "postgresql" or "sqlite".
	Name() string
	// Open checks the URI's scheme and opens a pool.
	Open(uri string) (*sql.DB, error)
	Version(ctx context.Context, db *sql.DB) (string, error)
	// Describe returns the named tables (all when none), sorted by name.
	Describe(ctx context.Context, db *sql.DB, tables []string) ([]*dbv1.Table, error)
	NativeType(portable string) string
	// AltersColumns says whether a column's type and nullability can change in place.
	AltersColumns() bool
}

// Service serves example.dbengine.v1.DatabaseEngine for one Dialect, with
// one pool per URI, opened on first use.
type Service struct {
	Dialect        Dialect
	Implementation string
	mu             sync.Mutex
	pools          map[string]*sql.DB
}

func (s *Service) pool(uri string) (*sql.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if db, ok := s.pools[uri]; ok {
		return db, nil
	}
	db, err := s.Dialect.Open(uri)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if s.pools == nil {
		s.pools = map[string]*sql.DB{}
	}
	s.pools[uri] = db
	return db, nil
}

// Close closes every pool.
func (s *Service) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, db := range s.pools {
		_ = db.Close()
	}
	s.pools = nil
}

func (s *Service) Connect(ctx context.Context, req *connect.Request[dbv1.ConnectRequest]) (*connect.Response[dbv1.ConnectResponse], error) {
	db, err := s.pool(req.Msg.Uri)
	if err != nil {
		return nil, err
	}
	version, err := s.Dialect.Version(ctx, db)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("cannot reach the %s database: %w", s.Dialect.Name(), err))
	}
	return connect.NewResponse(&dbv1.ConnectResponse{Engine: s.Dialect.Name(), ServerVersion: version, Implementation: s.Implementation}), nil
}

func (s *Service) Plan(ctx context.Context, req *connect.Request[dbv1.PlanRequest]) (*connect.Response[dbv1.PlanResponse], error) {
	if req.Msg.Desired == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("desired table is missing"))
	}
	db, err := s.pool(req.Msg.Uri)
	if err != nil {
		return nil, err
	}
	if _, err := checkTable(req.Msg.Desired); err != nil {
		return nil, err
	}
	tables, err := s.Dialect.Describe(ctx, db, []string{req.Msg.Desired.Name})
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	var current *dbv1.Table
	if len(tables) == 1 {
		current = tables[0]
	}
	statements, err := Plan(s.Dialect, current, req.Msg.Desired)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&dbv1.PlanResponse{Statements: statements}), nil
}

func (s *Service) Apply(ctx context.Context, req *connect.Request[dbv1.ApplyRequest]) (*connect.Response[dbv1.ApplyResponse], error) {
	db, err := s.pool(req.Msg.Uri)
	if err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	defer func() { _ = tx.Rollback() }()
	for i, stmt := range req.Msg.Statements {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return nil, connect.NewError(connect.CodeFailedPrecondition,
				fmt.Errorf("statement %d of %d failed, nothing was applied: %s: %w", i+1, len(req.Msg.Statements), stmt, err))
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, connect.NewError(connect.CodeAborted, fmt.Errorf("commit failed, nothing was applied: %w", err))
	}
	return connect.NewResponse(&dbv1.ApplyResponse{Applied: int32(len(req.Msg.Statements))}), nil
}

func (s *Service) Describe(ctx context.Context, req *connect.Request[dbv1.DescribeRequest]) (*connect.Response[dbv1.DescribeResponse], error) {
	db, err := s.pool(req.Msg.Uri)
	if err != nil {
		return nil, err
	}
	tables, err := s.Dialect.Describe(ctx, db, req.Msg.Tables)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].Name < tables[j].Name })
	return connect.NewResponse(&dbv1.DescribeResponse{Tables: tables}), nil
}
