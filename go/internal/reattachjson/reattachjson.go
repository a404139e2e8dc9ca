// Package reattachjson is go-plugin's ReattachConfig in the JSON shape
// Terraform's TF_REATTACH_PROVIDERS uses, and connect-plugin's
// CONNECT_PLUGIN_REATTACH line carries: the one form both the Go plugins and
// the Go hosts of the tests print and read.
package reattachjson

import (
	"fmt"
	"net"

	"github.com/hashicorp/go-plugin"
)

// Config is a ReattachConfig as JSON: the address as Network and String.
type Config struct {
	Protocol        string
	ProtocolVersion int
	Pid             int
	Test            bool
	Addr            struct{ Network, String string }
}

// From turns go-plugin's ReattachConfig into its JSON form.
func From(c *plugin.ReattachConfig) Config {
	out := Config{
		Protocol:        string(c.Protocol),
		ProtocolVersion: c.ProtocolVersion,
		Pid:             c.Pid,
		Test:            c.Test,
	}
	out.Addr.Network = c.Addr.Network()
	out.Addr.String = c.Addr.String()
	return out
}

// ReattachConfig turns the JSON form back into go-plugin's (unix or tcp only).
func (r Config) ReattachConfig() (*plugin.ReattachConfig, error) {
	var addr net.Addr
	switch r.Addr.Network {
	case "unix":
		addr = &net.UnixAddr{Net: "unix", Name: r.Addr.String}
	case "tcp":
		tcp, err := net.ResolveTCPAddr("tcp", r.Addr.String)
		if err != nil {
			return nil, err
		}
		addr = tcp
	default:
		return nil, fmt.Errorf("unsupported network %q", r.Addr.Network)
	}
	return &plugin.ReattachConfig{
		Protocol:        plugin.Protocol(r.Protocol),
		ProtocolVersion: r.ProtocolVersion,
		Addr:            addr,
		Pid:             r.Pid,
		Test:            r.Test,
	}, nil
}
