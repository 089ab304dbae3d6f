package cache_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coldstart-dev/coldstart/cache"
)

// The test binary doubles as the worker of TestDirProcesses: started with
// helperEnv set, it works on that directory and exits.
const (
	helperEnv   = "COLDSTART_CACHE_HELPER_DIR"
	helperIDEnv = "COLDSTART_CACHE_HELPER_ID"
	// Shared by workers and the checks after them.
	procKeys     = 10
	procVariants = 2
	procOps      = 40
	procCap      = 24 << 10
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		id, _ := strconv.Atoi(os.Getenv(helperIDEnv))
		if err := helperMain(dir, id); err != nil {
			fmt.Fprintln(os.Stderr, "worker", id, ":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func procKey(i int) string { return fmt.Sprintf("layer/sha256:%064x", i) }

// procContent is what a worker stores under key i: one of procVariants
// contents (different workers put different values under one key).
func procContent(i, variant int) []byte {
	return noise(fmt.Sprintf("%d/%d", i, variant), 1500+300*i)
}

// validContent reports whether gz decompresses to a content some worker
// stores under key i.
func validContent(i int, gz []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	for v := range procVariants {
		if bytes.Equal(raw, procContent(i, v)) {
			return nil
		}
	}
	return fmt.Errorf("key %d: content matches no variant", i)
}

func helperMain(dir string, id int) error {
	ctx := context.Background()
	logger, logs := newLogger(slog.LevelWarn)
	d, err := cache.NewDir(dir, cache.WithMaxSize(procCap), cache.WithLogger(logger))
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(uint64(id), 7))
	hits := 0
	for range procOps {
		i := r.IntN(procKeys)
		l := newLayer(nopTB{}, procContent(i, r.IntN(procVariants)), map[string]string{"worker": strconv.Itoa(id)})
		if err := d.Put(ctx, procKey(i), l); err != nil {
			return err
		}
		j := r.IntN(procKeys)
		got, err := d.Get(ctx, procKey(j))
		if errors.Is(err, cache.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		rc, err := got.Compressed()
		if err != nil {
			return err
		}
		gz, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", procKey(j), err)
		}
		if err := validContent(j, gz); err != nil {
			return err
		}
		hits++
	}
	// Nothing is ever corrupt here: any warning means a race was mistaken
	// for corruption.
	if s := logs.String(); s != "" {
		return fmt.Errorf("unexpected warnings:\n%s", s)
	}
	fmt.Printf("worker %d: %d hits\n", id, hits)
	return nil
}

// nopTB lets newLayer run outside a test; it fails loudly instead.
type nopTB struct{ testing.TB }

func (nopTB) Helper()                   {}
func (nopTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (nopTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// Several processes Put and Get overlapping keys in one directory, with a
// cap small enough that they evict each other's entries all the time.
func TestDirProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := filepath.Join(t.TempDir(), "cache")
	const workers = 4
	var wg sync.WaitGroup
	errs := make([]error, workers)
	outs := make([]bytes.Buffer, workers)
	for id := range workers {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+dir, helperIDEnv+"="+strconv.Itoa(id))
		cmd.Stdout, cmd.Stderr = &outs[id], &outs[id]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[id] = cmd.Wait() })
	}
	wg.Wait()
	for id, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v\n%s", id, err, outs[id].String())
		} else {
			t.Log(strings.TrimSpace(outs[id].String()))
		}
	}
	ctx := context.Background()
	logger, logs := newLogger(slog.LevelWarn)
	d, err := cache.NewDir(dir, cache.WithMaxSize(procCap), cache.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	es, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 {
		t.Fatal("no entries survived")
	}
	for _, e := range es {
		var i int
		if _, err := fmt.Sscanf(e.Key, "layer/sha256:%x", &i); err != nil {
			t.Fatalf("unexpected key %q", e.Key)
		}
		got, err := d.Get(ctx, e.Key)
		if err != nil {
			t.Errorf("Get(%s): %v", e.Key, err)
			continue
		}
		rc, err := got.Compressed()
		if err := validContent(i, readAll(t, rc, err)); err != nil {
			t.Error(err)
		}
	}
	if s := logs.String(); s != "" {
		t.Errorf("warnings while checking:\n%s", s)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %d files", len(ents))
	}
	usage, err := d.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Each Put evicts down to the cap, except the entry it wrote (and the
	// blobs orphaned by replaced keys, which the next eviction removes).
	if largest := int64(procCap + 2*(1500+300*procKeys)); usage > largest {
		t.Errorf("usage %d, want at most about the cap %d", usage, procCap)
	}
	if _, _, err := d.Prune(ctx, procCap); err != nil {
		t.Fatal(err)
	}
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	es, _ = d.List(ctx)
	referenced := map[string]bool{}
	for _, e := range es {
		referenced[e.Digest.Hex] = true
	}
	for _, b := range blobs {
		if !referenced[b.Name()] {
			t.Errorf("blob %s has no entry after Prune", b.Name())
		}
	}
}
