// Package roundtrips times a Go bench client's round trips the way the
// Node benches that drive it expect (bench/tls-floor.ts, bench/mib-floor.ts):
// some unmeasured round trips, "warm" on stdout, a line on stdin, then the
// timed ones, and {"p50_us":X} on stdout.
package roundtrips

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"
)

// Run makes warm round trips, prints "warm", waits for a line on stdin,
// times n more and prints their p50 in µs as {"p50_us":X}.
func Run(warm, n int, roundTrip func() error) error {
	for i := 0; i < warm; i++ {
		if err := roundTrip(); err != nil {
			return err
		}
	}
	fmt.Println("warm")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	samples := make([]float64, n)
	for i := range samples {
		t := time.Now()
		if err := roundTrip(); err != nil {
			return err
		}
		samples[i] = float64(time.Since(t).Nanoseconds()) / 1000
	}
	sort.Float64s(samples)
	out, err := json.Marshal(map[string]float64{"p50_us": samples[n/2]})
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}
