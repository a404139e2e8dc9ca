// Command dbengine-sqlite is the DatabaseEngine plugin for SQLite (pure Go, no cgo)
// (examples/dbengine), written with connect-go and served with go/connectplugin.
package main

import (
	"github.com/connect-plugin/connect-plugin/go/connectplugin"
	"github.com/connect-plugin/connect-plugin/go/dbengine"
	"github.com/connect-plugin/connect-plugin/go/gen/example/dbengine/v1/dbenginev1connect"
)

func main() {
	svc := &dbengine.Service{Dialect: dbengine.SQLite{}, Implementation: "dbengine-sqlite 1.0.0 (Go)"}
	path, handler := dbenginev1connect.NewDatabaseEngineHandler(svc)
	connectplugin.Serve(connectplugin.Config{
		CookieKey:   "DBENGINE_PLUGIN",
		CookieValue: "schemahero",
		Versions:    []int32{1},
		Plugins: []connectplugin.Plugin{{
			Name: "engine", Version: "1.0.0", Capabilities: []string{"sqlite"},
			Service: dbenginev1connect.DatabaseEngineName, Path: path, Handler: handler,
		}},
		OnStop: svc.Close,
	})
}
