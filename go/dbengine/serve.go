package dbengine

import (
	"github.com/connect-plugin/connect-plugin/go/connectplugin"
	"github.com/connect-plugin/connect-plugin/go/gen/example/dbengine/v1/dbenginev1connect"
)

// ServePlugin runs the DatabaseEngine plugin for one dialect: what each
// go/cmd/dbengine-* main does, with the handshake of examples/dbengine/shared.ts.
func ServePlugin(d Dialect, implementation string) {
	svc := &Service{Dialect: d, Implementation: implementation}
	path, handler := dbenginev1connect.NewDatabaseEngineHandler(svc)
	connectplugin.Serve(connectplugin.Config{
		CookieKey:   "DBENGINE_PLUGIN",
		CookieValue: "schemahero",
		Versions:    []int32{1},
		Plugins: []connectplugin.Plugin{{
			Name: "engine", Version: "1.0.0", Capabilities: []string{d.Name()},
			Service: dbenginev1connect.DatabaseEngineName, Path: path, Handler: handler,
		}},
		OnStop: svc.Close,
	})
}
