// Command dbengine-sqlite is the DatabaseEngine plugin for SQLite
// (examples/dbengine): pure Go (modernc.org/sqlite), no cgo.
package main

import "github.com/connect-plugin/connect-plugin/go/dbengine"

func main() { dbengine.ServePlugin(dbengine.SQLite{}, "dbengine-sqlite 1.0.0 (Go)") }
