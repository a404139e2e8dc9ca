// Package memkv is the in-memory store behind the Go test plugins that serve
// go-plugin's examples/grpc KV service (shared.KV): Get returns Prefix and
// the value, or an error for a missing key.
package memkv

import "fmt"

type Store struct {
	Prefix string
	values map[string][]byte
}

func New(prefix string) *Store {
	return &Store{Prefix: prefix, values: map[string][]byte{}}
}

func (s *Store) Put(key string, value []byte) error {
	s.values[key] = value
	return nil
}

func (s *Store) Get(key string) ([]byte, error) {
	v, ok := s.values[key]
	if !ok {
		return nil, fmt.Errorf("no such key %q", key)
	}
	return append([]byte(s.Prefix), v...), nil
}
