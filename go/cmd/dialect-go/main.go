// Command dialect-go is SQLTraceBench's dialect plugin (examples/dialect) in
// Go: SchemaConverter and QueryTranslator from MySQL to PostgreSQL and SQLite.
package main

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	"github.com/connect-plugin/connect-plugin/go/connectplugin"
	dlv1 "github.com/connect-plugin/connect-plugin/go/gen/example/dialect/v1"
	"github.com/connect-plugin/connect-plugin/go/gen/example/dialect/v1/dialectv1connect"
)

type service struct{}

func checkSource(source string) error {
	if source != "mysql" {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("unsupported source dialect %q (supported: mysql)", source))
	}
	return nil
}

func (service) ConvertSchema(_ context.Context, req *connect.Request[dlv1.ConvertSchemaRequest]) (*connect.Response[dlv1.ConvertSchemaResponse], error) {
	if err := checkSource(req.Msg.SourceDialect); err != nil {
		return nil, err
	}
	ddl, warnings, err := convertSchema(req.Msg.Ddl, req.Msg.TargetDialect)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return connect.NewResponse(&dlv1.ConvertSchemaResponse{Ddl: ddl, Warnings: warnings}), nil
}

func (service) TranslateQuery(_ context.Context, req *connect.Request[dlv1.TranslateQueryRequest]) (*connect.Response[dlv1.TranslateQueryResponse], error) {
	if err := checkSource(req.Msg.SourceDialect); err != nil {
		return nil, err
	}
	q, warnings, err := translateQuery(req.Msg.Query, req.Msg.TargetDialect)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return connect.NewResponse(&dlv1.TranslateQueryResponse{Query: q, Warnings: warnings}), nil
}

func main() {
	convPath, convHandler := dialectv1connect.NewSchemaConverterHandler(service{})
	qPath, qHandler := dialectv1connect.NewQueryTranslatorHandler(service{})
	caps := []string{"mysql->postgresql", "mysql->sqlite"}
	connectplugin.Serve(connectplugin.Config{
		CookieKey:   "SQLTRACEBENCH_PLUGIN",
		CookieValue: "dialect",
		Versions:    []int32{1},
		Plugins: []connectplugin.Plugin{
			{Name: "schema", Version: "1.0.0-go", Capabilities: caps, Service: dialectv1connect.SchemaConverterName, Path: convPath, Handler: convHandler},
			{Name: "query", Version: "1.0.0-go", Capabilities: caps, Service: dialectv1connect.QueryTranslatorName, Path: qPath, Handler: qHandler},
		},
	})
}
