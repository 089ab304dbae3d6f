package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/internal/shaper"
)

// Network is a network between a node and the registry: a bandwidth shared
// by every request and a round-trip time paid by each request.
type Network struct {
	// Name is "datacenter", "cloud", "edge", or the RATE,RTT it was parsed
	// from.
	Name string `json:"name"`
	// BytesPerSecond is the bandwidth; 0 means unlimited.
	BytesPerSecond float64 `json:"bytesPerSecond"`
	// RTT is the round-trip time.
	RTT time.Duration `json:"-"`
}

// The named networks.
var (
	// Datacenter: 10 Gbit/s, 1 ms round trip (a node next to its registry
	// mirror).
	Datacenter = Network{Name: "datacenter", BytesPerSecond: 10e9 / 8, RTT: time.Millisecond}
	// Cloud: 1 Gbit/s, 10 ms round trip (a cloud node pulling from the
	// provider's registry in the same region).
	Cloud = Network{Name: "cloud", BytesPerSecond: 1e9 / 8, RTT: 10 * time.Millisecond}
	// Edge: 100 Mbit/s, 50 ms round trip (an edge site or another region).
	Edge = Network{Name: "edge", BytesPerSecond: 100e6 / 8, RTT: 50 * time.Millisecond}
)

// DefaultNetworks are the networks a report estimates when none is given.
func DefaultNetworks() []Network { return []Network{Datacenter, Cloud, Edge} }

// ParseNetwork parses a network name ("datacenter", "cloud", "edge") or
// RATE,RTT such as "200Mbit,20ms" (rates as shaper.ParseRate reads them,
// RTTs as time.ParseDuration does).
func ParseNetwork(s string) (Network, error) {
	t := strings.TrimSpace(s)
	for _, n := range DefaultNetworks() {
		if strings.EqualFold(t, n.Name) {
			return n, nil
		}
	}
	rate, rtt, ok := strings.Cut(t, ",")
	if !ok {
		return Network{}, fmt.Errorf("unknown network %q: use datacenter, cloud, edge or RATE,RTT such as 200Mbit,20ms", s)
	}
	r, err := shaper.ParseRate(rate)
	if err != nil {
		return Network{}, fmt.Errorf("network %q: %w", s, err)
	}
	d, err := time.ParseDuration(strings.TrimSpace(rtt))
	if err != nil || d < 0 {
		return Network{}, fmt.Errorf("network %q: invalid RTT %q: want a duration such as 20ms", s, strings.TrimSpace(rtt))
	}
	return Network{Name: strings.ReplaceAll(t, " ", ""), BytesPerSecond: r, RTT: d}, nil
}

// String describes the network: "edge (100 Mbit/s, 50 ms)".
func (n Network) String() string {
	return fmt.Sprintf("%s (%s, %s)", n.Name, FormatRate(n.BytesPerSecond), FormatDuration(n.RTT))
}

// FormatRate formats bytes per second in bits: "100 Mbit/s", "1 Gbit/s";
// "unlimited" for 0.
func FormatRate(bytesPerSecond float64) string {
	if bytesPerSecond <= 0 {
		return "unlimited"
	}
	bits := bytesPerSecond * 8
	for _, u := range []struct {
		f    float64
		name string
	}{{1e9, "Gbit/s"}, {1e6, "Mbit/s"}, {1e3, "kbit/s"}} {
		if bits >= u.f {
			return strconv.FormatFloat(bits/u.f, 'g', 4, 64) + " " + u.name
		}
	}
	return strconv.FormatFloat(bits, 'g', 4, 64) + " bit/s"
}

// FormatDuration formats a round-trip time: "50 ms", "1.5 ms", "0 ms".
func FormatDuration(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'g', 4, 64) + " ms"
}
