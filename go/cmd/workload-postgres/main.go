// Command workload-postgres is StormDB's workload plugin (examples/workload)
// in Go: the plugin owns its pgx connection pool, built at start from its
// configuration (CONNECT_PLUGIN_CONFIG, validated by the host against the
// manifest's configSchema), and the host sends operations, never connections.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/connect-plugin/connect-plugin/go/connectplugin"
	wlv1 "github.com/connect-plugin/connect-plugin/go/gen/example/workload/v1"
	"github.com/connect-plugin/connect-plugin/go/gen/example/workload/v1/workloadv1connect"
)

// config mirrors the manifest's configSchema; checked here again, because a
// plugin cannot assume every host validates.
type config struct {
	DSN      string `json:"dsn"`
	Table    string `json:"table"`
	MaxConns int32  `json:"maxConns"`
}

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

func main() {
	cfg := config{Table: "workload_ops", MaxConns: 8}
	if err := connectplugin.DecodeConfig(&cfg); err != nil {
		fail(err)
	}
	if cfg.DSN == "" || !identifier.MatchString(cfg.Table) || cfg.MaxConns < 1 {
		fail(fmt.Errorf("invalid configuration: dsn is required, table must match [a-z_][a-z0-9_]*, maxConns >= 1"))
	}
	w := &workload{cfg: cfg}
	// The pool is built lazily by pgxpool; the table is created at first use.
	poolCfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		fail(fmt.Errorf("invalid dsn: %w", err))
	}
	poolCfg.MaxConns = cfg.MaxConns
	w.pool, err = pgxpool.NewWithConfig(context.Background(), poolCfg)
	if err != nil {
		fail(err)
	}
	path, handler := workloadv1connect.NewWorkloadHandler(w)
	connectplugin.Serve(connectplugin.Config{
		CookieKey:   "WORKLOAD_PLUGIN",
		CookieValue: "stormdb",
		Versions:    []int32{1},
		Plugins: []connectplugin.Plugin{{
			Name: "workload", Version: "1.0.0", Capabilities: []string{"postgresql", "idempotent-insert"},
			Service: workloadv1connect.WorkloadName, Path: path, Handler: handler,
		}},
		OnStop: w.pool.Close,
	})
}

func fail(err error) {
	connectplugin.Log("error", "workload plugin cannot start", map[string]any{"error": err.Error()})
	os.Exit(1)
}

type workload struct {
	cfg        config
	pool       *pgxpool.Pool
	ready      atomic.Bool
	operations atomic.Int64
	duplicates atomic.Int64
	errors     atomic.Int64
}

func (w *workload) ensureTable(ctx context.Context) error {
	if w.ready.Load() {
		return nil
	}
	_, err := w.pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %q (
		idempotency_key text PRIMARY KEY, worker integer NOT NULL, seq bigint NOT NULL,
		payload text NOT NULL, written_at timestamptz NOT NULL DEFAULT now())`, w.cfg.Table))
	if err != nil {
		var exists bool
		// Two first calls racing on CREATE TABLE IF NOT EXISTS can collide in the catalog.
		if qErr := w.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", w.cfg.Table).Scan(&exists); qErr != nil || !exists {
			return err
		}
	}
	w.ready.Store(true)
	return nil
}

const insertSQL = `INSERT INTO %q (idempotency_key, worker, seq, payload) VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING`

func (w *workload) Execute(ctx context.Context, req *connect.Request[wlv1.ExecuteRequest]) (*connect.Response[wlv1.ExecuteResponse], error) {
	op := req.Msg.Op
	if op == nil || op.IdempotencyKey == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("an operation needs an idempotency_key"))
	}
	if err := w.ensureTable(ctx); err != nil {
		w.errors.Add(1)
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	start := time.Now()
	tag, err := w.pool.Exec(ctx, fmt.Sprintf(insertSQL, w.cfg.Table), op.IdempotencyKey, op.Worker, op.Seq, op.Payload)
	micros := time.Since(start).Microseconds()
	if err != nil {
		w.errors.Add(1)
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("operation %s: %w", op.IdempotencyKey, err))
	}
	return connect.NewResponse(&wlv1.ExecuteResponse{Result: w.count(op.IdempotencyKey, tag.RowsAffected() == 1, micros)}), nil
}

func (w *workload) count(key string, applied bool, micros int64) *wlv1.OperationResult {
	w.operations.Add(1)
	if !applied {
		w.duplicates.Add(1)
	}
	return &wlv1.OperationResult{IdempotencyKey: key, Applied: applied, Duplicate: !applied, DbMicros: micros}
}

func (w *workload) ExecuteBatch(ctx context.Context, req *connect.Request[wlv1.ExecuteBatchRequest]) (*connect.Response[wlv1.ExecuteBatchResponse], error) {
	if err := w.ensureTable(ctx); err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	start := time.Now()
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		w.errors.Add(1)
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	applied := make([]bool, len(req.Msg.Ops))
	for i, op := range req.Msg.Ops {
		if op.IdempotencyKey == "" {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("operation %d of the batch has no idempotency_key; nothing was applied", i+1))
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf(insertSQL, w.cfg.Table), op.IdempotencyKey, op.Worker, op.Seq, op.Payload)
		if err != nil {
			w.errors.Add(1)
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("operation %s: %w; nothing was applied", op.IdempotencyKey, err))
		}
		applied[i] = tag.RowsAffected() == 1
	}
	if err := tx.Commit(ctx); err != nil {
		w.errors.Add(1)
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	micros := time.Since(start).Microseconds()
	res := &wlv1.ExecuteBatchResponse{}
	for i, op := range req.Msg.Ops {
		res.Results = append(res.Results, w.count(op.IdempotencyKey, applied[i], micros))
	}
	return connect.NewResponse(res), nil
}

func (w *workload) Metrics(ctx context.Context, req *connect.Request[wlv1.MetricsRequest], stream *connect.ServerStream[wlv1.MetricsSnapshot]) error {
	interval := time.Duration(req.Msg.IntervalMs) * time.Millisecond
	if interval <= 0 {
		interval = time.Second
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		stat := w.pool.Stat()
		if err := stream.Send(&wlv1.MetricsSnapshot{
			Operations: w.operations.Load(), Duplicates: w.duplicates.Load(), Errors: w.errors.Load(),
			PoolTotal: stat.TotalConns(), PoolIdle: stat.IdleConns(),
		}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (w *workload) Health(ctx context.Context, _ *connect.Request[wlv1.HealthRequest]) (*connect.Response[wlv1.HealthResponse], error) {
	if err := w.pool.Ping(ctx); err != nil {
		return connect.NewResponse(&wlv1.HealthResponse{Ok: false, Detail: err.Error()}), nil
	}
	return connect.NewResponse(&wlv1.HealthResponse{Ok: true, Detail: fmt.Sprintf("pool: %d of %d connections", w.pool.Stat().TotalConns(), w.cfg.MaxConns)}), nil
}

func (w *workload) Cleanup(ctx context.Context, req *connect.Request[wlv1.CleanupRequest]) (*connect.Response[wlv1.CleanupResponse], error) {
	if req.Msg.DropTable {
		if _, err := w.pool.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %q", w.cfg.Table)); err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, err)
		}
		w.ready.Store(false)
	}
	return connect.NewResponse(&wlv1.CleanupResponse{}), nil
}
