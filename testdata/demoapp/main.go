// Command demoapp is the tiny HTTP server inside coldstart's demo image
// (see internal/demo). At start-up it reads what a real service reads: its
// config file, the CA bundle and the time zone named by $TZ. Once it accepts
// connections it prints "ready" on stdout, then answers every request with
// its greeting.
//
//	demoapp [-config /app/config.json] [-addr :8080] [-exit-when-ready]
package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

type config struct {
	Greeting string `json:"greeting"`
	Addr     string `json:"addr"`
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("demoapp: ")
	cfgPath := flag.String("config", "/app/config.json", "config file; missing means defaults")
	addr := flag.String("addr", "", "listen address (default: the config's, else :8080)")
	exit := flag.Bool("exit-when-ready", false, "exit right after printing ready")
	flag.Parse()

	cfg := config{Greeting: "hello", Addr: ":8080"}
	switch b, err := os.ReadFile(*cfgPath); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		log.Fatal(err)
	default:
		if err := json.Unmarshal(b, &cfg); err != nil {
			log.Fatalf("%s: %v", *cfgPath, err)
		}
	}
	if *addr != "" {
		cfg.Addr = *addr
	}

	// Warm what a TLS client and a logger with local times would load.
	if pool, err := x509.SystemCertPool(); err == nil {
		_ = pool
	}
	loc := time.UTC
	if tz := os.Getenv("TZ"); tz != "" {
		if l, err := time.LoadLocation(tz); err == nil {
			loc = l
		} else {
			log.Printf("time zone %s: %v; using UTC", tz, err)
		}
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s (%s)", ln.Addr(), loc)
	fmt.Println("ready")
	if *exit {
		return
	}
	greeting := cfg.Greeting + "\n"
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, greeting)
	})))
}
