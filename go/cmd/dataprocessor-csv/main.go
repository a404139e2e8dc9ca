// Command dataprocessor-csv is a DataProcessor plugin (examples/dataprocessor,
// seed 004) in Go: capability "csv-to-json", configured by the config type
// its manifest declares ({"delimiter": ";", "header": true}).
package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"unicode/utf8"

	"connectrpc.com/connect"

	"github.com/connect-plugin/connect-plugin/go/connectplugin"
	dpv1 "github.com/connect-plugin/connect-plugin/go/gen/example/dataprocessor/v1"
	"github.com/connect-plugin/connect-plugin/go/gen/example/dataprocessor/v1/dataprocessorv1connect"
)

type config struct {
	Delimiter string `json:"delimiter"`
	Header    bool   `json:"header"`
}

type processor struct{ cfg config }

func (p processor) ProcessData(_ context.Context, req *connect.Request[dpv1.ProcessDataRequest]) (*connect.Response[dpv1.ProcessDataResponse], error) {
	if req.Msg.Capability != "csv-to-json" {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("capability %q is not served here (this plugin serves csv-to-json)", req.Msg.Capability))
	}
	r := csv.NewReader(bytes.NewReader(req.Msg.Input))
	r.Comma, _ = utf8.DecodeRuneInString(p.cfg.Delimiter)
	records, err := r.ReadAll()
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("input is not valid CSV: %w", err))
	}
	var out any = records
	if p.cfg.Header && len(records) > 0 {
		rows := make([]map[string]string, 0, len(records)-1)
		for _, rec := range records[1:] {
			row := map[string]string{}
			for i, name := range records[0] {
				row[name] = rec[i]
			}
			rows = append(rows, row)
		}
		out = rows
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return connect.NewResponse(&dpv1.ProcessDataResponse{Output: data, ContentType: "application/json"}), nil
}

func main() {
	cfg := config{Delimiter: ",", Header: true}
	if err := connectplugin.DecodeConfig(&cfg); err != nil || utf8.RuneCountInString(cfg.Delimiter) != 1 {
		if err == nil {
			err = errors.New("delimiter must be one character")
		}
		connectplugin.Log("error", "invalid configuration", map[string]any{"error": err.Error()})
		os.Exit(1)
	}
	path, handler := dataprocessorv1connect.NewDataProcessorHandler(processor{cfg})
	connectplugin.Serve(connectplugin.Config{
		CookieKey:   "DATAPROCESSOR_PLUGIN",
		CookieValue: "v1",
		Versions:    []int32{1},
		Plugins: []connectplugin.Plugin{{
			Name: "processor", Version: "1.0.0", Capabilities: []string{"csv-to-json"},
			Service: dataprocessorv1connect.DataProcessorName, Path: path, Handler: handler,
		}},
	})
}
