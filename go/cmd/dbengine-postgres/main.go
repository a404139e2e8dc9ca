// Command dbengine-postgres is the DatabaseEngine plugin for PostgreSQL
// (examples/dbengine), written with connect-go and served with go/connectplugin.
package main

import "github.com/connect-plugin/connect-plugin/go/dbengine"

func main() { dbengine.ServePlugin(dbengine.Postgres{}, "dbengine-postgres 1.0.0 (Go)") }
